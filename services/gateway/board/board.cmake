# The web status board: its renderer (gw_board_html.c) with the compiled-in style sheet and
# script, as a library the gateway links (its routes are in ../gw_board.c), and its selftest.
# Included by services/gateway/CMakeLists.txt.
set(GW_BOARD_DIR ${CMAKE_CURRENT_LIST_DIR})
add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/gw_board_assets.c
  COMMAND ${CMAKE_COMMAND} -DCSS=${GW_BOARD_DIR}/board.css -DJS=${GW_BOARD_DIR}/board.js
          -DSVG=${GW_BOARD_DIR}/board.svg
          -DOUT=${CMAKE_CURRENT_BINARY_DIR}/gw_board_assets.c -P ${GW_BOARD_DIR}/embed.cmake
  DEPENDS ${GW_BOARD_DIR}/board.css ${GW_BOARD_DIR}/board.js ${GW_BOARD_DIR}/board.svg
          ${GW_BOARD_DIR}/embed.cmake
  VERBATIM)
add_library(gw_board_html STATIC ${GW_BOARD_DIR}/gw_board_html.c
            ${CMAKE_CURRENT_BINARY_DIR}/gw_board_assets.c)
target_include_directories(gw_board_html PUBLIC ${GW_BOARD_DIR})
target_link_libraries(gw_board_html PUBLIC samordna)

add_executable(gw_board_selftest ${GW_BOARD_DIR}/gw_board_selftest.c)
target_link_libraries(gw_board_selftest PRIVATE gw_board_html)
