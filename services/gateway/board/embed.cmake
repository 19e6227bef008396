# Writes the board's style sheet, script and icon as C arrays (gw_board_html.h names them), so the
# gateway serves them from its own binary. Run by board.cmake at build time:
#   cmake -DCSS=board.css -DJS=board.js -DSVG=board.svg -DOUT=gw_board_assets.c -P embed.cmake
set(text "/* Generated from services/gateway/board/ by embed.cmake; not edited. */\n")
string(APPEND text "#include <stddef.h>\n")
foreach(asset css js svg)
  string(TOUPPER ${asset} var)
  file(READ ${${var}} hex HEX)
  string(LENGTH "${hex}" digits)
  math(EXPR bytes "${digits} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," array "${hex}")
  string(APPEND text "const unsigned char gw_board_${asset}[] = {${array}0x00};\n")
  string(APPEND text "const size_t gw_board_${asset}_len = ${bytes};\n")
endforeach()
file(WRITE ${OUT} "${text}")
