// The web status board (gw_board_html.c): the page works without this script. With it, choosing
// a day swaps the page's content in place instead of loading the whole page, keeps the focus
// on the date field and the address in the history, and says what it shows in the live
// status line. Any failure falls back to the ordinary form submission.
'use strict';
(function () {
  const form = document.querySelector('form.dato');
  if (!form || !window.fetch || !window.DOMParser) return;

  async function show(url, push) {
    const res = await fetch(url, { headers: { Accept: 'text/html' } });
    const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
    const fresh = doc.querySelector('main');
    const main = document.querySelector('main');
    if (!fresh || !main) throw new Error('no main');
    main.replaceWith(fresh);
    document.title = doc.title;
    const day = doc.querySelector('#as_of');
    if (day) form.elements.as_of.value = day.value;
    const said = doc.querySelector('p.status');
    const status = document.querySelector('p.status');
    if (said && status) status.textContent = said.textContent;
    if (push) history.pushState({}, '', url);
  }

  form.addEventListener('submit', function (ev) {
    const day = form.elements.as_of.value;
    if (!day) return;
    ev.preventDefault();
    const url = '/?as_of=' + encodeURIComponent(day);
    show(url, true).catch(function () { window.location.assign(url); });
  });

  window.addEventListener('popstate', function () {
    show(window.location.pathname + window.location.search, false)
      .catch(function () { window.location.reload(); });
  });
})();
