'use strict';
// The message wall. Message content only ever reaches the page through textContent and
// attribute setters: never as markup.
(function () {
  const PAGE_SIZE = 20;
  const MAX_LIMIT = 1000;
  const REFRESH_MS = 4000;
  const MAX_ACTIVITY = 12;
  const MAX_TEXT = 4000;
  const FUNCTIONS = ['get-messages', 'post-message', 'delete-messages'];

  const $ = (id) => document.getElementById(id);
  const list = $('messages');
  const status = $('status');
  const seen = new Map(FUNCTIONS.map((name) => [name, new Set()]));
  // The messages shown, newest first, and the cursor of the page after them.
  let shown = [];
  let next = null;
  let refreshing = false;
  // Requests in flight; the main region is aria-busy while there are any.
  let pending = 0;

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const clockFormat = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function formatSize(bytes) {
    if (bytes < 1024) return bytes + (bytes === 1 ? ' byte' : ' bytes');
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + ' KiB';
    return (bytes / 1024 / 1024).toFixed(1) + ' MiB';
  }

  // A stable colour for an instance id, so the same instance looks the same everywhere.
  function tone(instance) {
    let h = 0;
    for (const c of instance) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return 'tone' + (h % 8);
  }

  // "get-messages; instance=1a2b3c4d" -> { fn, instance }
  function parseServedBy(value) {
    const match = /^([a-z0-9-]+); instance=([0-9a-z]+)$/.exec(value || '');
    return match ? { fn: match[1], instance: match[2] } : null;
  }

  function instanceChip(instance) {
    const chip = el('span', 'chip ' + tone(instance), instance);
    chip.dataset.instance = instance;
    return chip;
  }

  function remember(served) {
    if (!served) return;
    if (!seen.has(served.fn)) seen.set(served.fn, new Set());
    const instances = seen.get(served.fn);
    if (instances.has(served.instance)) return;
    instances.add(served.instance);
    const row = document.querySelector('#instances [data-function="' + served.fn + '"] dd');
    if (row) row.append(instanceChip(served.instance));
  }

  function logActivity(method, path, code, served) {
    const item = el('li');
    const verb = el('span', 'verb ' + method.toLowerCase(), method);
    // The path without its query, a message id cut short: the full one is in the tooltip.
    const short = path.split('?')[0].replace(/[0-9a-f-]{36}/, (id) => id.slice(0, 8) + '…');
    const label = el('code', 'path', short);
    label.title = path;
    item.append(verb, label, el('time', 'when', clockFormat.format(new Date())));
    const who = el('span', 'by');
    who.append(el('span', code >= 400 || code === 0 ? 'code bad' : 'code', code ? String(code) : 'failed'));
    if (served) {
      item.dataset.function = served.fn;
      item.dataset.instance = served.instance;
      who.append(el('span', 'fn', served.fn), instanceChip(served.instance));
    }
    item.append(who);
    const log = $('activity');
    log.prepend(item);
    while (log.children.length > MAX_ACTIVITY) log.lastElementChild.remove();
  }

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle('bad', Boolean(isError));
  }

  function busy(delta) {
    pending += delta;
    document.querySelector('main').setAttribute('aria-busy', String(pending > 0));
  }

  // One API call: records who answered, and throws the API's own error message on failure.
  async function call(method, path, options) {
    busy(1);
    try {
      return await exchange(method, path, options || {});
    } finally {
      busy(-1);
    }
  }

  async function exchange(method, path, opts) {
    const init = { method, headers: { accept: 'application/json' }, cache: 'no-store' };
    if (opts.body !== undefined) {
      init.body = opts.body;
      init.headers['content-type'] = opts.type;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (!opts.quiet) logActivity(method, path, 0, null);
      throw new Error('The API did not answer (' + error.message + ').');
    }
    const served = parseServedBy(response.headers.get('x-served-by'));
    remember(served);
    if (opts.quiet) {
      if (served) $('refreshed').textContent = 'Last refresh at ' + clockFormat.format(new Date()) +
        ' by ' + served.fn + ', instance ' + served.instance + '.';
    } else {
      logActivity(method, path, response.status, served);
    }
    const text = response.status === 204 ? '' : await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!response.ok) {
      const message = data && data.error && data.error.message;
      throw new Error(message || 'The API answered ' + response.status + '.');
    }
    return { data, served };
  }

  function messageNode(message) {
    const item = el('li', 'message');
    item.dataset.id = message.id;
    const meta = el('div', 'meta');
    const created = new Date(message.createdAt);
    const time = el('time', 'when', dateFormat.format(created));
    time.dateTime = message.createdAt;
    meta.append(time, el('span', 'size', formatSize(message.size)), el('code', 'type', message.contentType));
    const remove = el('button', 'icon', 'Delete');
    remove.type = 'button';
    remove.setAttribute('aria-label', 'Delete the message of ' + dateFormat.format(created));
    remove.addEventListener('click', () => deleteOne(message.id, item));
    meta.append(remove);
    item.append(meta);
    if (message.bodyEncoding === 'utf8') {
      const body = message.body.length > MAX_TEXT ? message.body.slice(0, MAX_TEXT) + '…' : message.body;
      item.append(el('p', 'text', body));
    } else {
      const link = el('a', 'download', 'Download ' + formatSize(message.size));
      link.href = '/messages/' + encodeURIComponent(message.id);
      link.download = 'message-' + message.id;
      item.append(link);
    }
    return item;
  }

  // Brings the list in line with `shown` without touching nodes that stay: no flicker, and the
  // keyboard focus stays where it was.
  function render() {
    const wanted = new Set(shown.map((m) => m.id));
    for (const node of Array.from(list.children)) {
      if (!wanted.has(node.dataset.id)) node.remove();
    }
    const existing = new Map(Array.from(list.children, (node) => [node.dataset.id, node]));
    let cursor = list.firstElementChild;
    for (const message of shown) {
      const node = existing.get(message.id) || messageNode(message);
      if (node === cursor) {
        cursor = cursor.nextElementSibling;
      } else {
        list.insertBefore(node, cursor);
      }
    }
    $('empty').hidden = shown.length > 0;
    $('count').textContent = shown.length ? '(' + shown.length + (next ? '+' : '') + ')' : '';
    $('more').hidden = !next;
  }

  // Reloads the newest messages, as many as are shown (at least one page).
  async function refresh(quiet) {
    if (refreshing) return;
    refreshing = true;
    try {
      const limit = Math.min(MAX_LIMIT, Math.max(PAGE_SIZE, shown.length));
      const { data } = await call('GET', '/messages?order=desc&limit=' + limit, { quiet });
      shown = data.messages;
      next = data.next;
      render();
    } catch (error) {
      say(error.message, true);
    } finally {
      refreshing = false;
    }
  }

  async function loadMore() {
    if (!next) return;
    try {
      const path = '/messages?order=desc&limit=' + PAGE_SIZE + '&after=' + encodeURIComponent(next);
      const { data } = await call('GET', path);
      const known = new Set(shown.map((m) => m.id));
      shown = shown.concat(data.messages.filter((m) => !known.has(m.id)));
      next = data.next;
      render();
    } catch (error) {
      say(error.message, true);
    }
  }

  function by(served) {
    return served ? ' (' + served.fn + ', instance ' + served.instance + ')' : '';
  }

  function post(body, type) {
    return call('POST', '/messages', { body, type });
  }

  async function postText(event) {
    event.preventDefault();
    const text = $('text').value;
    if (!text) {
      say('Write something first.', true);
      $('text').focus();
      return;
    }
    try {
      const { data, served } = await post(text, 'text/plain; charset=utf-8');
      $('text').value = '';
      say('Stored a message of ' + formatSize(data.size) + by(served) + '.');
      await refresh(true);
    } catch (error) {
      say(error.message, true);
    }
  }

  async function postFiles(event) {
    event.preventDefault();
    const files = Array.from($('file').files);
    if (!files.length) {
      say('Choose a file first.', true);
      $('file').focus();
      return;
    }
    // All at once: several post-message instances may take them.
    const results = await Promise.allSettled(
      files.map((file) => post(file, file.type || 'application/octet-stream')));
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length) {
      say(failed.length + ' of ' + files.length + ' files were not stored: ' + failed[0].reason.message, true);
    } else {
      say('Stored ' + files.length + (files.length === 1 ? ' file.' : ' files.'));
      $('file').value = '';
    }
    await refresh(true);
  }

  async function deleteOne(id, node) {
    try {
      const { served } = await call('DELETE', '/messages/' + encodeURIComponent(id));
      say('Deleted one message' + by(served) + '.');
    } catch (error) {
      say(error.message, true);
    }
    // Keep the keyboard focus on the wall when the focused button goes away.
    if (node.contains(document.activeElement)) $('wall-heading').focus();
    shown = shown.filter((m) => m.id !== id);
    render();
    await refresh(true);
  }

  async function deleteAll() {
    $('confirm').close();
    try {
      const { served } = await call('DELETE', '/messages');
      say('Deleted every message' + by(served) + '.');
      shown = [];
      next = null;
      render();
    } catch (error) {
      say(error.message, true);
    }
    await refresh(true);
  }

  async function burst() {
    // Six full page reads at once: while one instance reads, the others take the rest.
    const reads = Array.from({ length: 6 }, () => call('GET', '/messages?order=desc&limit=100'));
    const results = await Promise.allSettled(reads);
    const instances = new Set(results
      .filter((r) => r.status === 'fulfilled' && r.value.served)
      .map((r) => r.value.served.instance));
    say('6 reads answered by ' + instances.size + (instances.size === 1 ? ' instance' : ' instances') +
      ' of get-messages.');
  }

  $('text-form').addEventListener('submit', postText);
  $('text').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) postText(event);
  });
  $('file-form').addEventListener('submit', postFiles);
  $('more').addEventListener('click', loadMore);
  $('burst').addEventListener('click', burst);
  $('delete-all').addEventListener('click', () => $('confirm').showModal());
  $('confirm-cancel').addEventListener('click', () => $('confirm').close());
  $('confirm-ok').addEventListener('click', deleteAll);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') refresh(true);
  });
  setInterval(() => {
    if (document.visibilityState === 'visible') refresh(true);
  }, REFRESH_MS);
  refresh(false);
})();
