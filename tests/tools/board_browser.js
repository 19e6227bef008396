// The web status board as a person sees it, in headless Chromium driven by playwright-core
// (tests/gateway_board_test.py runs it after importing the Østfold fixture).
//
//   node board_browser.js BASE_URL OUT_DIR
//
// Loads BASE_URL/?as_of=2019-11-30 and reads the grid, the grants' sum and the barriers as
// rendered text; walks the page with the keyboard (the skip link first, Tab to the date field,
// a day typed, Tab to the button, Enter) and reads the grid again; does the same with
// JavaScript disabled; and at 200 % zoom checks that the page does not overflow sideways.
// Screenshots go to OUT_DIR (board.png, board-200.png, board-nojs.png). Prints one JSON
// object of what it read on stdout; exits 1 with the first check that failed on stderr.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const [base, outDir] = process.argv.slice(2);
if (!base || !outDir) {
  console.error('usage: node board_browser.js BASE_URL OUT_DIR');
  process.exit(2);
}
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

// The grid as text: {municipality: {column heading: cell text}}, and which cells are reached.
async function readGrid(page) {
  return page.evaluate(() => {
    const table = document.querySelector('#tavle');
    if (!table) return null;
    const heads = [...table.querySelectorAll('thead th')].map((th) => th.innerText.trim());
    const grid = {};
    for (const tr of table.querySelectorAll('tbody tr')) {
      const row = {};
      const cells = [...tr.children];
      cells.forEach((cell, i) => {
        row[heads[i]] = cell.innerText.trim();
      });
      row.reached = cells.filter((c) => c.classList.contains('naadd')).map((c) => heads[cells.indexOf(c)]);
      grid[cells[0].innerText.trim()] = row;
    }
    return grid;
  });
}

// Tab until the focus is on an element matching `selector`; returns the presses it took.
async function tabTo(page, selector, max) {
  for (let n = 1; n <= max; n++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector))
      return n;
  }
  throw new Error(`check failed: ${selector} not reached with ${max} presses of Tab`);
}

// Is the focused element's focus visible (an outline or a ring of some width)?
async function focusShows(page) {
  return page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none';
  });
}

// From the day's page: the skip link first, then the date field, a day typed, the button.
async function chooseDay(page, digits) {
  const skip = await tabTo(page, 'a.skip', 1);
  const box = await page.locator('a.skip').boundingBox();
  check(box && box.y >= 0, 'the skip link is visible when focused');
  const toDate = await tabTo(page, '#as_of', 3);
  check(await focusShows(page), 'the date field shows its focus');
  // 10.10.2019: the same digits whichever order the browser shows day and month in
  await page.keyboard.type(digits);
  const value = await page.$eval('#as_of', (e) => e.value);
  const toButton = await tabTo(page, 'form.dato button', 8);
  check(await focusShows(page), 'the button shows its focus');
  await page.keyboard.press('Enter');
  return { skip, toDate, toButton, value };
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const args = process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [];
  const browser = await chromium.launch({ executablePath: chromiumPath, args });
  const seen = {};
  try {
    const url = base + '/?as_of=2019-11-30';

    // ---- with JavaScript, at 100 %
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const errors = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    const res = await page.goto(url);
    seen.status = res.status();
    seen.lang = await page.getAttribute('html', 'lang');
    seen.title = await page.title();
    seen.grid = await readGrid(page);
    seen.sum = await page.$eval('#sum', (e) => e.innerText).catch(() => null);
    seen.barriers = await page.$$eval('section[aria-labelledby="h-barrierer"] h3', (hs) =>
      hs.map((h) => h.innerText.trim()));
    seen.barrierTitles = await page.$$eval('table.barrierer tbody th', (ths) => ths.map((t) => t.innerText));
    seen.timelines = await page.$$eval('section[aria-labelledby="h-moter"] h3', (hs) => hs.map((h) => h.innerText));
    seen.haldenMeetings = await page.$$eval('section[aria-labelledby="h-moter"] h3', (hs) => {
      const h = hs.find((x) => x.innerText === 'Halden');
      const ol = h && h.nextElementSibling;
      return ol ? [...ol.querySelectorAll('li')].map((li) => li.innerText) : [];
    });
    await page.screenshot({ path: path.join(outDir, 'board.png'), fullPage: true });

    seen.keyboard = await chooseDay(page, '10102019');
    await page.waitForFunction(() => {
      const h = document.querySelector('#h-tavle');
      return h && h.innerText.includes('10.\u00a0oktober 2019');
    });
    seen.gridAfter = await readGrid(page);
    seen.statusAfter = await page.$eval('p.status', (e) => e.innerText);
    seen.focusAfter = await page.evaluate(() => document.activeElement.outerHTML.slice(0, 40));
    seen.urlAfter = page.url();
    seen.consoleErrors = errors;
    await ctx.close();

    // ---- without JavaScript: the grid is there, and the form still works
    const nojs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
    const p2 = await nojs.newPage();
    await p2.goto(url);
    seen.gridNoJs = await readGrid(p2);
    await p2.screenshot({ path: path.join(outDir, 'board-nojs.png'), fullPage: true });
    const nav = p2.waitForNavigation();
    seen.keyboardNoJs = await chooseDay(p2, '10102019');
    await nav;
    seen.gridNoJsAfter = await readGrid(p2);
    seen.urlNoJsAfter = p2.url();
    await nojs.close();

    // ---- 200 % zoom: half the CSS pixels at twice the density
    const zoom = await browser.newContext({ viewport: { width: 640, height: 450 }, deviceScaleFactor: 2 });
    const p3 = await zoom.newPage();
    await p3.goto(url);
    seen.zoom = await p3.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      formRight: document.querySelector('form.dato').getBoundingClientRect().right,
    }));
    seen.gridZoom = await readGrid(p3);
    await p3.screenshot({ path: path.join(outDir, 'board-200.png'), fullPage: true });
    await zoom.close();
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen) + '\n');
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
