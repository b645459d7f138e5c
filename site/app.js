// app.js: the demo page. Everything it runs goes through window.remask.fetch
// (remask.js): the same API calls reach the in-page engine or a remote server;
// the in-page engine loads models through the package's loadModel
// (remask.local: the remask npm package, docs/js.md).
// The option defaults and the size presets come from the engine
// (remask.engine: wasm/defaults.go), never from a copy here.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const ui = { runs: [], events: [], state: 'starting', manifest: null, loaded: new Set(), history: [], notices: [], announcements: [], phases: [], engineGen: 0, cacheGen: 0 };
  window.remaskUI = ui; // for scripts and the browser tests

  let DEFAULTS = null; // option_defaults from the engine
  let PRESETS = []; // [{name,label,num_samples,sequence_length,iterations,temperature}]
  let maxTokens = Infinity;
  let abort = null;
  let scrubAt = null;
  let pipelinesBuilt = false; // a WebGPU generation finished in this page load
  const params = new URLSearchParams(location.search);
  const optInputs = Array.from(document.querySelectorAll('[data-o]'));
  const opt = (k) => document.querySelector(`[data-o=${k}]`);
  const MB = (b) => (b / 1e6).toFixed(1);

  const setStatus = (el, text, cls) => {
    el.textContent = text;
    el.className = 'status ' + (cls || '');
  };
  // announce is the one live region: a few messages per run (start, done,
  // stopped, errors), never per iteration.
  function announce(text) {
    ui.announcements.push(text);
    $('announce').textContent = text;
  }
  function phase(text, frac) {
    if (ui.phases.length < 400) ui.phases.push({ t: performance.now(), text });
    $('phase').hidden = false;
    $('phase-text').textContent = text;
    const bar = $('phase-bar');
    if (frac === undefined || frac === null) bar.removeAttribute('value');
    else bar.value = Math.max(0, Math.min(1, frac));
  }
  const endPhase = () => ($('phase').hidden = true);

  // ---- labels, help and messages written for the web ---------------------
  const LABELS = {
    num_samples: 'Samples', sequence_length: 'Length', iterations: 'Passes', temperature: 'Temperature', top_p: 'Top-p',
    method: 'Method', remasking: 'Re-masking', schedule_mode: 'Schedule', start_ratio: 'Start ratio', end_ratio: 'End ratio',
    randomness_strength: 'Randomness', quality_metric: 'Quality metric', sampler_neighbors: 'Sampler neighbours',
    seed_placement: 'Text placement', unknown_chars: 'Unknown characters', compat: 'Compat', masking_ratios: 'Masking ratios',
    seed_text: 'Your text', template: 'Your text', placeholder: 'Hole character', seed: 'Seed', judge: 'Judge', model: 'Language model',
    remasking_model: 'Remasking model', url: 'Model URL', id: 'Model URL',
    ordering: 'Ordering', order_temperature: 'Order temperature', unmask_schedule: 'Unmask schedule', confidence_threshold: 'Confidence threshold',
    block_length: 'Block length', early_commit_gap: 'Early commit gap',
  };
  // The unmask method's own fields (sent with method unmask only: the API
  // refuses them with another), and the diffusion fields it has no use for
  // (unmask never re-masks: the API refuses them set with unmask).
  const UNMASK_FIELDS = ['ordering', 'order_temperature', 'unmask_schedule', 'confidence_threshold', 'block_length', 'early_commit_gap'];
  const REMASK_ONLY = ['remasking', 'randomness_strength', 'schedule_mode'];
  const isUnmask = () => opt('method').value === 'unmask';
  // syncMethod shows the fields of the chosen method and hides the others.
  function syncMethod() {
    const u = isUnmask();
    $('unmask-opts').hidden = !u;
    for (const k of REMASK_ONLY) opt(k).closest('label').hidden = u;
    $('remasker').closest('label').hidden = u;
    const ot = opt('order_temperature');
    ot.disabled = opt('ordering').value === 'random';
    ot.title = ot.disabled ? 'The random ordering has no scores to add noise to: pick another ordering to use it.' : '';
  }
  const fieldEl = (f) => ({ seed: $('o-seed'), seed_text: $('prompt'), template: $('prompt'), judge: $('judge'), model: $('model'), remasking_model: $('remasker'), url: $('model-url'), id: $('model-url') })[f] || opt(f);
  // webMessage turns an API error into a sentence for this page: no CLI
  // flags, a URL named once, the field by its label here.
  function webMessage(e) {
    let m = String((e && e.message) || e);
    m = m.replace(/\s*\[[a-z_]+\]$/, '').replace(/\s*\(field [a-z_]+\)/, '');
    m = m.replace(/\s*\(--[a-z-]+(?: [A-Z]+)?\)/g, '').replace(/--([a-z-]+)/g, (_, f) => `“${LABELS[f.replace(/-/g, '_')] || f}”`);
    // A URL is named once, first: the engine's layers each repeat it.
    const urls = [...new Set((m.match(/\bhttps?:\/\/[^\s,)]+/g) || []).map((u) => u.replace(/:$/, '')))];
    for (const u of urls) m = m.split(u).map((part, i, all) => (i < all.length - 1 ? part.replace(/(?:opening|GET|reading|downloading|loading|the download of)\s*$/i, '') : part)).join('');
    m = m.replace(/^[\s:]+/, '').replace(/(?::\s*){2,}/g, ': ').replace(/\s{2,}/g, ' ').replace(/:\s*$/, '').trim();
    if (urls.length) m = `${urls[0]}: ${m}`;
    else m = m.charAt(0).toUpperCase() + m.slice(1);
    if (e && e.field && LABELS[e.field] && !['url', 'id'].includes(e.field)) m += ` (check “${LABELS[e.field]}”)`;
    return m;
  }
  function markField(f) {
    const el = fieldEl(f);
    if (!el) return;
    el.setAttribute('aria-invalid', 'true');
    if ($('advanced').contains(el)) $('advanced').open = true;
    el.focus();
  }
  const clearInvalid = () => document.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));

  // ---- form <-> options ----------------------------------------------------
  function formState() {
    const s = { size: sizeName(), seed: $('o-seed').value, model: $('model').value, judge: $('judge').value, remasking_model: $('remasker').value,
      prompt: $('prompt').value, heatmap: $('heatmap').checked, compare: $('compare').checked };
    for (const el of optInputs) s[el.dataset.o] = el.type === 'checkbox' ? el.checked : el.value;
    return s;
  }
  const sizeName = () => (document.querySelector('input[name=size]:checked') || {}).value || 'custom';
  // applyState fills the form from s (a share link, a history entry, an
  // example). It returns notices for values it could not take as they were.
  function applyState(s) {
    const notes = [];
    for (const el of optInputs) {
      const k = el.dataset.o;
      if (!(k in s) || s[k] === undefined || s[k] === null) continue;
      if (el.type === 'checkbox') el.checked = !!s[k];
      else if (el.tagName === 'SELECT') {
        const v = String(s[k]);
        if ([...el.options].some((o) => o.value === v)) el.value = v;
        else notes.push(`${LABELS[k]} “${v}” is not a choice here; kept “${el.value}”.`);
      } else el.value = Array.isArray(s[k]) ? s[k].join(', ') : String(s[k]);
    }
    if (s.seed !== undefined) $('o-seed').value = s.seed === null ? '' : s.seed;
    const pick = (sel, v, what) => {
      if (v === undefined || v === null || v === '') return;
      if ([...sel.options].some((o) => o.value === v)) sel.value = v;
      else notes.push(`The ${what} “${v}” is not available in this page (a dropped file or a URL that was not loaded); using “${sel.options[sel.selectedIndex] ? sel.options[sel.selectedIndex].value : 'none'}”.`);
    };
    pick($('model'), s.model, 'model');
    // A link that names the model but not its remasking model gets the
    // model's own pairing (the small model's remasker, none for the others).
    if (s.model && !('remasking_model' in s)) pairRemasker('remasking' in s);
    pick($('judge'), s.judge, 'judge');
    pick($('remasker'), s.remasking_model, 'remasking model');
    if (typeof s.prompt === 'string') $('prompt').value = s.prompt;
    else if (typeof s.template === 'string') {
      $('prompt').value = s.template;
      if (!s.template) notes.push('The link had an empty template: there was nothing to fill; the text box is empty.');
    } else if (typeof s.seed_text === 'string') $('prompt').value = s.seed_text;
    if ('heatmap' in s) $('heatmap').checked = !!s.heatmap;
    if ('compare' in s) $('compare').checked = !!s.compare;
    const size = s.size || s.preset;
    if (size && document.querySelector(`input[name=size][value="${size}"]`)) document.querySelector(`input[name=size][value="${size}"]`).checked = true;
    else syncSize();
    syncMethod();
    plan();
    return notes;
  }
  function applyPreset(name) {
    const p = PRESETS.find((x) => x.name === name);
    if (!p || !DEFAULTS) return;
    for (const k of ['num_samples', 'sequence_length', 'iterations']) opt(k).value = p[k];
    opt('temperature').value = p.temperature || DEFAULTS.temperature;
    plan();
  }
  function resetDefaults() {
    if (!DEFAULTS) return;
    applyState({ ...DEFAULTS, masking_ratios: '', seed: '', heatmap: false, compare: false });
    applyDefaultModels();
    const mid = PRESETS[1] || PRESETS[0];
    if (mid) {
      document.querySelector(`input[name=size][value="${mid.name}"]`).checked = true;
      applyPreset(mid.name);
    }
    clearInvalid();
  }
  // syncSize checks the size preset the fields match, or none (custom).
  function syncSize() {
    const v = (k) => Number(opt(k).value);
    const p = PRESETS.find((x) => x.num_samples === v('num_samples') && x.sequence_length === v('sequence_length') && x.iterations === v('iterations') && v('temperature') === (x.temperature || (DEFAULTS && DEFAULTS.temperature)));
    for (const r of document.querySelectorAll('input[name=size]')) r.checked = !!p && r.value === p.name;
  }
  function buildSizes() {
    const box = $('sizes');
    box.querySelectorAll('label').forEach((l) => l.remove());
    for (const p of PRESETS) {
      const l = document.createElement('label');
      l.title = `${p.num_samples} sample${p.num_samples > 1 ? 's' : ''} × ${p.sequence_length} characters, ${p.iterations} passes${p.temperature ? `, temperature ${p.temperature}` : ''}`;
      const r = Object.assign(document.createElement('input'), { type: 'radio', name: 'size', value: p.name });
      r.addEventListener('change', () => applyPreset(p.name));
      l.append(r, p.label, Object.assign(document.createElement('small'), { textContent: `${p.num_samples}×${p.sequence_length}` }));
      box.append(l);
    }
  }

  const holeChar = () => Array.from(opt('placeholder').value || '_')[0] || '_';
  const hasHoles = () => Array.from($('prompt').value).includes(holeChar());
  // plan says under the text box what Generate will do.
  function plan() {
    if (!DEFAULTS) return ($('prompt-plan').textContent = 'Generate works as soon as the engine has started (a few seconds).');
    const text = $('prompt').value;
    const n = Array.from(text).length;
    const len = Number(opt('sequence_length').value) || 0;
    const samples = Number(opt('num_samples').value) || 0;
    const passes = opt('masking_ratios').value.trim() ? opt('masking_ratios').value.split(/[\s,]+/).filter(Boolean).length : Number(opt('iterations').value) || 0;
    const lenEl = opt('sequence_length');
    let s;
    if (hasHoles()) {
      const holes = Array.from(text).filter((c) => c === holeChar()).length;
      s = `Fill ${holes} hole character${holes === 1 ? '' : 's'} in your ${n}-character text`;
      lenEl.disabled = true;
      lenEl.title = 'A text with holes sets its own length.';
    } else {
      lenEl.disabled = false;
      lenEl.title = '';
      s = n ? `Continue your ${n} characters to ${len}` : `Write ${len} characters from scratch`;
    }
    $('prompt-plan').textContent = `${s} · ${samples} sample${samples === 1 ? '' : 's'} · ${passes} pass${passes === 1 ? '' : 'es'}.`;
  }

  // request validates the form with the API's rules and turns it into a
  // POST /v1/generate body; a problem throws {field, message}.
  function request() {
    const s = formState();
    const bad = (field, message) => {
      throw Object.assign(new Error(message), { field });
    };
    const num = (k, { int = false, min = -Infinity, max = Infinity, gt = false, optional = false } = {}) => {
      const raw = String(s[k]).trim();
      if (raw === '') return optional ? undefined : bad(k, `${LABELS[k]} is empty: type a number.`);
      const x = Number(raw);
      if (!Number.isFinite(x)) bad(k, `${LABELS[k]} “${raw}” is not a number.`);
      if (int && !Number.isInteger(x)) bad(k, `${LABELS[k]} must be a whole number, not ${raw}.`);
      if (gt ? x <= min : x < min) bad(k, `${LABELS[k]} ${raw} is too small: it must be ${gt ? 'more than' : 'at least'} ${min}.`);
      if (x > max) bad(k, `${LABELS[k]} ${raw} is too large: it must be at most ${max}.`);
      return x;
    };
    const unmask = s.method === 'unmask';
    const r = {
      model: s.model || undefined, judge: s.judge, method: s.method, num_samples: num('num_samples', { int: true, min: 1 }),
      temperature: num('temperature', { min: 0, gt: true }), top_p: num('top_p', { min: 0, gt: true, max: 1 }),
      start_ratio: num('start_ratio', { min: 0, max: 1 }), end_ratio: num('end_ratio', { min: 0, max: 1 }),
      quality_metric: s.quality_metric, seed_placement: s.seed_placement, unknown_chars: s.unknown_chars,
      disable_sampler: s.disable_sampler, compat: s.compat.trim(),
    };
    if (unmask) {
      // The API's rules (engine/sampler/options.go validateUnmask).
      r.ordering = s.ordering;
      if (s.ordering !== 'random') r.order_temperature = num('order_temperature', { min: 0 });
      r.unmask_schedule = s.unmask_schedule;
      r.confidence_threshold = num('confidence_threshold', { min: 0, max: 1 });
      r.block_length = num('block_length', { int: true, min: 0 });
      r.early_commit_gap = num('early_commit_gap', { min: 0, max: 1 });
      if (s.masking_ratios.trim() && s.unmask_schedule !== 'ratio') bad('masking_ratios', 'Masking ratios are the ratio schedule\'s list: set Unmask schedule to ratio, or empty Masking ratios.');
    } else {
      Object.assign(r, { schedule_mode: s.schedule_mode, randomness_strength: num('randomness_strength', { min: 0, max: 1 }), remasking: s.remasking });
    }
    if (Array.from(s.placeholder).length !== 1) bad('placeholder', `The hole character must be exactly one character (it is “${s.placeholder}”).`);
    r.placeholder = s.placeholder;
    if (s.sampler_neighbors) r.sampler_neighbors = s.sampler_neighbors;
    if (s.remasking_model && !unmask) r.remasking_model = s.remasking_model;
    if (s.masking_ratios.trim()) {
      r.masking_ratios = s.masking_ratios.split(/[\s,;]+/).filter(Boolean).map((t, i) => {
        const x = Number(t);
        if (!Number.isFinite(x)) bad('masking_ratios', `Masking ratios: “${t}” is not a number; write numbers from 0 to 1 separated by commas, e.g. 0.9, 0.5, 0.1.`);
        if (x < 0 || x > 1) bad('masking_ratios', `Masking ratios: ratio ${i + 1} (${t}) must be from 0 to 1.`);
        return x;
      });
    } else r.iterations = num('iterations', { int: true, min: 1, max: 10000 });
    const text = s.prompt;
    const n = Array.from(text).length;
    let len;
    if (hasHoles()) {
      r.template = text;
      len = n;
    } else {
      len = num('sequence_length', { int: true, min: 1 });
      r.sequence_length = len;
      if (text) {
        if (n >= len) bad('sequence_length', `Your text has ${n} characters and Length is ${len}: make Length larger than your text so there is room to continue, or put ${holeChar()} where the model should write.`);
        r.seed_text = text;
      }
    }
    if (unmask && r.block_length > 0) {
      // Every block needs a step (engine/sampler/unmask.go).
      const blocks = r.block_length >= len ? 1 : Math.ceil(len / r.block_length);
      const steps = r.masking_ratios ? r.masking_ratios.length : r.iterations;
      if (steps < blocks) bad('block_length', `Block length ${r.block_length} cuts ${len} characters into ${blocks} blocks, and every block needs a pass: use at least ${blocks} passes or a longer Block length.`);
    }
    if (r.num_samples * len > maxTokens) bad('num_samples', `${r.num_samples} samples × ${len} characters is ${r.num_samples * len} characters; this engine takes at most ${maxTokens} per run. Lower Samples or Length.`);
    const seed = num('seed', { int: true, min: 0, max: Number.MAX_SAFE_INTEGER, optional: true });
    if (seed !== undefined) r.seed = seed;
    return r;
  }
  function shareLink(run) {
    const u = new URL(location.href);
    const s = formState();
    if (run) s.run = true;
    u.hash = 'o=' + encodeURIComponent(JSON.stringify(s));
    return u.href;
  }
  // fromHash reads a share link's settings; numbers out of range are clamped
  // and every change is named in a notice.
  function fromHash() {
    const m = /^#o=(.*)$/.exec(location.hash);
    if (!m) return null;
    let s;
    try {
      s = JSON.parse(decodeURIComponent(m[1]));
      if (!s || typeof s !== 'object' || Array.isArray(s)) throw new Error('not an object');
    } catch (e) {
      ui.notices.push('The share link is damaged: its settings could not be read; the defaults are used.');
      return null;
    }
    const notes = [];
    const clamp = (k, lo, hi, int) => {
      if (!(k in s) || s[k] === '' || s[k] === null) return;
      let x = Number(s[k]);
      if (!Number.isFinite(x)) {
        notes.push(`${LABELS[k]} “${s[k]}” in the link is not a number; the default is used.`);
        delete s[k];
        return;
      }
      const y = Math.min(hi, Math.max(lo, int ? Math.round(x) : x));
      if (y !== x) notes.push(`${LABELS[k]} ${x} in the link is out of range; it is now ${y}.`);
      s[k] = y;
    };
    clamp('num_samples', 1, 64, true);
    clamp('iterations', 1, 1000, true);
    const ns = Number(s.num_samples) || 1;
    clamp('sequence_length', 1, Math.max(1, Math.floor(maxTokens / ns)), true);
    clamp('temperature', 0.01, 10);
    clamp('top_p', 0.01, 1);
    for (const k of ['start_ratio', 'end_ratio', 'randomness_strength', 'confidence_threshold', 'early_commit_gap']) clamp(k, 0, 1);
    clamp('order_temperature', 0, 100);
    clamp('block_length', 0, 1 << 20, true);
    clamp('seed', 0, Number.MAX_SAFE_INTEGER, true);
    notes.push(...applyState(s));
    ui.notices.push(...notes);
    return s;
  }

  // ---- API helpers ---------------------------------------------------------
  async function apiError(resp) {
    let e;
    try {
      e = (await resp.json()).error;
    } catch (_) {}
    return e ? Object.assign(new Error(e.message), { field: e.field, code: e.code }) : new Error(`the engine answered HTTP ${resp.status} ${resp.statusText}`);
  }
  // ndjson calls f for every event of a streamed answer.
  async function ndjson(resp, f) {
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (value) buf += value;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) await f(JSON.parse(line));
      }
      if (done) break;
    }
  }
  const post = (path, body, signal) =>
    remask.fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal });

  const manifestModel = (id) => ui.manifest && ui.manifest.models.find((m) => m.id === id);
  // load puts a model on the engine; body is a POST /v1/models body. report
  // gets (bytes, total, fromCache). It returns the model's listing.
  async function load(body, signal, report) {
    if (!remask.server) {
      // The in-page engine: the package's loadModel (downloads, the cache,
      // the manifest's sha256, a dropped file's bytes).
      await (signal ? waitAbortable(remask.ready, signal) : remask.ready);
      const src = body.file || body.url || body.id;
      const info = await remask.local.loadModel(src, { id: body.file || body.url ? body.id : undefined, signal, onProgress: (p) => report && report(p.loaded, p.total), onQueued: (n) => report && report(-1, n) });
      ui.loaded.add(info.id);
      return info;
    }
    const resp = await post('/v1/models', body, signal);
    if (!resp.ok) throw await apiError(resp);
    let info = null;
    await ndjson(resp, (ev) => {
      if (ev.event === 'progress') report && report(ev.bytes, ev.total);
      else if (ev.event === 'queued') report && report(-1, ev.position);
      else if (ev.event === 'loaded') info = ev.model;
      else if (ev.event === 'error') throw Object.assign(new Error(ev.error.message), { field: ev.error.field, code: ev.error.code });
    });
    if (!info) throw new Error('loading the model ended without an answer');
    ui.loaded.add(info.id);
    return info;
  }
  const modelLine = (info) => `${info.id}: ${info.kind.replace('_', ' ')}, ${info.n_layer} layers, ${MB(info.parameters)} M parameters, ${info.dtype}, context ${info.block_size} characters.`;

  // ensureModels loads the run's models that are not on the engine yet, with
  // one progress line over all of them (MB, speed, time left).
  async function ensureModels(ids, signal) {
    const todo = ids.filter((id) => id && id !== 'none' && !ui.loaded.has(id));
    if (!todo.length) return;
    const size = (id) => (manifestModel(id) ? manifestModel(id).bytes : 0);
    const cached = await cachedSet();
    const total = todo.reduce((a, id) => a + (cached.has(id) ? 0 : size(id)), 0);
    let doneBytes = 0;
    const t0 = performance.now();
    for (const id of todo) {
      if (remask.server) {
        phase(`Loading ${id} on the server…`, null);
        const info = await load({ id }, signal, (bytes, tot) => bytes >= 0 && tot && phase(`Loading ${id} on the server: ${MB(bytes)} of ${MB(tot)} MB`, bytes / tot));
        setStatus($('model-status'), modelLine(info), 'good');
        continue;
      }
      const fromCache = cached.has(id);
      phase(fromCache ? `Loading ${id} from this browser's cache…` : `Downloading ${id}: ${MB(size(id))} MB${todo.length > 1 && total > size(id) ? ` (${MB(total)} MB in all)` : ''}…`, fromCache ? null : total ? doneBytes / total : null);
      let last = 0;
      const info = await load({ id }, signal, (bytes, tot) => {
        if (bytes < 0) return phase(`Loading ${id}: waiting for the engine (position ${tot})`);
        if (fromCache || !total) return phase(`Loading ${id} from this browser's cache: ${MB(bytes)} of ${MB(tot || size(id))} MB`, tot ? bytes / tot : null);
        last = bytes;
        const got = doneBytes + bytes;
        const secs = (performance.now() - t0) / 1000;
        const speed = secs > 0.2 ? got / secs : 0;
        const eta = speed ? (total - got) / speed : 0;
        phase(`Downloading ${id}: ${MB(got)} of ${MB(total)} MB${speed ? ` · ${MB(speed)} MB/s · about ${Math.ceil(eta)} s left` : ''}`, got / total);
      });
      if (!fromCache) doneBytes += last || size(id);
      setStatus($('model-status'), modelLine(info), 'good');
    }
    refreshCached();
  }

  // The Cache API is readable from the page: the picker shows what is cached
  // before anything is downloaded.
  async function cachedSet() {
    const have = new Set();
    if (remask.server || !ui.manifest || !window.caches) return have;
    try {
      const c = await caches.open('remask-models-v1');
      for (const m of ui.manifest.models) if (await c.match(new URL(m.file, location.href).href)) have.add(m.id);
    } catch (_) {}
    return have;
  }
  // roleOf says what a shipped model is for, from its role in the manifest.
  function roleOf(m) {
    const f = ui.manifest || {};
    if (m.id === f.light_model) return 'small and fast: CPUs, phones, a first run';
    if (m.id === f.default_model) return 'the full model: the best text, for GPUs';
    if (m.id === f.remasking_model) return 'chooses what to re-mask (Re-masking: model)';
    if (m.id === f.default_judge) return 'scores the result (optional)';
    return m.kind === 'sequence_scorer' ? 'a judge' : m.kind === 'token_classifier' ? 'a remasking model' : 'a language model';
  }
  // runIds are the shipped models the form's next run needs.
  const runIds = () => [$('model').value, $('judge').value, isUnmask() ? '' : $('remasker').value].filter((id) => id && id !== 'none' && manifestModel(id));
  async function refreshCached() {
    const gen = ++ui.cacheGen;
    const have = await cachedSet();
    if (gen !== ui.cacheGen) return; // a newer refresh is under way
    const stateOf = (m) => (ui.loaded.has(m.id) ? 'loaded' : have.has(m.id) ? 'cached' : remask.server ? 'on the server' : `${MB(m.bytes)} MB download`);
    for (const sel of [$('model'), $('judge'), $('remasker')]) {
      for (const o of sel.options) {
        const m = manifestModel(o.value);
        if (!m) continue;
        const state = stateOf(m);
        o.textContent = `${m.id}: ${roleOf(m)} (${remask.server ? 'on the server' : MB(m.bytes) + ' MB'}${state === 'loaded' || state === 'cached' ? ', ' + state : ''})`;
        o.title = m.summary || '';
        o.dataset.state = state;
      }
    }
    const list = $('model-list');
    list.replaceChildren();
    for (const m of (ui.manifest && ui.manifest.models) || []) {
      const li = document.createElement('li');
      const state = stateOf(m);
      li.append(Object.assign(document.createElement('strong'), { textContent: m.id }), ` ${MB(m.bytes)} MB`);
      if (state === 'cached' || state === 'loaded') li.append(' ', Object.assign(document.createElement('span'), { className: 'badge', textContent: state }));
      li.append(` · ${roleOf(m)}. `, Object.assign(document.createElement('span'), { className: 'sum', textContent: m.summary || m.title || '' }));
      list.append(li);
    }
    const m = manifestModel($('model').value);
    const todo = remask.server ? [] : runIds().filter((id) => !have.has(id) && !ui.loaded.has(id));
    const bytes = todo.reduce((a, id) => a + manifestModel(id).bytes, 0);
    $('model-help').textContent = m && !remask.server ? `${m.id}: ${have.has(m.id) || ui.loaded.has(m.id) ? 'in this browser already, no download' : `the first run downloads ${MB(m.bytes)} MB once`}. Sizes are download sizes; “cached” models load without a download.` : 'Sizes are download sizes; “cached” models load without a download.';
    plan();
    const p = $('prompt-plan');
    if (todo.length) p.textContent += ` First run: a one-time ${MB(bytes)} MB download${todo.length > 1 ? ` (${todo.join(' + ')})` : ''}.`;
    else if (m && have.has(m.id) && !remask.server) p.append(' ', Object.assign(document.createElement('span'), { className: 'badge', textContent: 'model cached' }));
    modelWhy();
  }

  // ---- which model runs by default -----------------------------------------
  // The small model (the manifest's light_model) with its remasking model
  // where it serves: the in-page CPU engine (chosen, or auto leaving a
  // software adapter or having none) and small screens. The full model
  // (default_model) on a WebGPU adapter and on a remote server. The judge is
  // off by default: the first download is the small model and its remasker.
  const smallScreen = () => matchMedia('(max-width: 600px)').matches;
  function defaultChoice() {
    const f = ui.manifest;
    if (!f) return null;
    const full = { model: f.default_model, remasker: '', remasking: DEFAULTS ? DEFAULTS.remasking : opt('remasking').value, why: 'gpu' };
    if (remask.server) return { ...full, why: 'server' };
    if (!f.light_model || !manifestModel(f.light_model)) return full;
    const e = remask.engine;
    const cpu = e ? !e.webgpu : !navigator.gpu;
    if (!cpu && !smallScreen()) return full;
    const rm = f.remasking_model && manifestModel(f.remasking_model) ? f.remasking_model : '';
    return { model: f.light_model, remasker: rm, remasking: rm ? 'model' : full.remasking, why: cpu ? 'cpu' : 'screen' };
  }
  function applyDefaultModels() {
    $('judge').value = 'none';
    const d = defaultChoice();
    if (!d) return;
    ui.defaultChoice = d;
    $('model').value = d.model;
    $('remasker').value = d.remasker;
    opt('remasking').value = d.remasking;
  }
  // useModel switches the language model (the one-click switch): the small
  // model comes with its remasking model, the full one with its own
  // defaults, unless the remasking choice was changed by hand.
  function useModel(id) {
    $('model').value = id;
    pairRemasker(false);
    modelWhy();
    refreshCached();
  }
  function pairRemasker(keepRemasking) {
    const f = ui.manifest;
    if (!f) return;
    const id = $('model').value;
    const smallSet = $('remasker').value === f.remasking_model && opt('remasking').value === 'model';
    if (id === f.light_model && f.remasking_model && manifestModel(f.remasking_model)) {
      $('remasker').value = f.remasking_model;
      if (!keepRemasking) opt('remasking').value = 'model';
    } else if (smallSet || keepRemasking) {
      $('remasker').value = '';
      if (!keepRemasking) opt('remasking').value = DEFAULTS ? DEFAULTS.remasking : 'auto';
    }
  }
  // modelWhy says next to Generate which model runs and why, with the
  // switch to the other one.
  function modelWhy() {
    const el = $('model-why');
    const f = ui.manifest;
    const d = ui.defaultChoice;
    const m = f && manifestModel($('model').value);
    const full = f && manifestModel(f.default_model);
    const light = f && manifestModel(f.light_model);
    if (!f || !d || !m || !full || remask.server) return (el.hidden = true);
    const because = { cpu: 'because this runs on your CPU', screen: 'because this is a small screen', gpu: 'because this runs on your GPU' }[d.why] || '';
    const how = m.id === d.model ? because : 'as chosen';
    let text;
    let to = null;
    if (light && m.id === light.id) {
      text = `Small model (${MB(light.bytes)} MB) ${how};`;
      to = full;
      $('model-switch').textContent = `switch to the ${MB(full.bytes)} MB model for better text`;
    } else if (m.id === full.id) {
      text = `Full model (${MB(full.bytes)} MB) ${how}${light ? ';' : '.'}`;
      to = light;
      if (light) $('model-switch').textContent = `switch to the ${MB(light.bytes)} MB small model (faster${d.why === 'cpu' ? ' here' : ' on a CPU'})`;
    } else text = `Model ${m.id} (${MB(m.bytes)} MB), as chosen.`;
    $('model-why-text').textContent = text;
    $('model-switch').hidden = !to;
    $('model-switch').dataset.to = to ? to.id : '';
    el.hidden = false;
  }
  function addModel(info) {
    const sel = { sequence_scorer: $('judge'), language_model: $('model'), token_classifier: $('remasker') }[info.kind];
    if (!sel) return null;
    if (![...sel.options].some((o) => o.value === info.id)) sel.add(new Option(info.id, info.id));
    return sel;
  }
  async function loadFrom(body, what) {
    setStatus($('model-status'), `Loading ${what}…`);
    try {
      const info = await load(body, undefined, (b, t) => b >= 0 && setStatus($('model-status'), `Loading ${what}: ${MB(b)}${t ? ' of ' + MB(t) : ''} MB`));
      const sel = addModel(info);
      if (sel) sel.value = info.id;
      setStatus($('model-status'), modelLine(info), 'good');
      refreshCached();
    } catch (e) {
      $('cache-status').textContent = '';
      const msg = webMessage(e);
      setStatus($('model-status'), `Could not load the model: ${msg.includes(what) ? msg : what + ': ' + msg}`, 'error');
    }
  }
  const idOf = (name) => name.replace(/^.*\//, '').replace(/\.safetensors$/, '').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 60) || 'model';
  const freeId = (id) => {
    const taken = (x) => [$('model'), $('judge'), $('remasker')].some((s) => [...s.options].some((o) => o.value === x));
    let n = 2;
    let out = id;
    while (taken(out)) out = `${id}-${n++}`;
    return out;
  };

  // ---- the denoising view --------------------------------------------------
  function runView(run) {
    const box = document.createElement('div');
    box.className = 'run';
    if (run.label) box.append(Object.assign(document.createElement('h3'), { textContent: run.label }));
    run.box = box;
    run.rows = [];
    $('runs').append(box);
  }
  // ensureRows draws n samples of T masked cells (the kept characters of a
  // template or prompt shown as they are): the canvas appears at the click.
  function ensureRows(run, n, T) {
    while (run.rows.length < n) {
      const i = run.rows.length;
      const head = document.createElement('div');
      head.className = 'sample-head';
      const title = Object.assign(document.createElement('span'), { textContent: `Sample ${i + 1}`, id: `s-${run.key}-${i}` });
      const copy = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Copy', disabled: true });
      copy.setAttribute('aria-label', `Copy sample ${i + 1}${run.label ? ' (' + run.label + ')' : ''}`);
      copy.addEventListener('click', () => copyText(run.rows[i].text || ''));
      head.append(title, copy);
      const pre = document.createElement('pre');
      pre.className = 'sample';
      pre.setAttribute('role', 'region');
      pre.setAttribute('aria-labelledby', title.id);
      pre.tabIndex = 0;
      const cells = [];
      for (let j = 0; j < T; j++) {
        const c = document.createElement('span');
        const k = run.kept.get(j);
        c.className = k !== undefined ? 'c keep' : 'c mask';
        c.textContent = k !== undefined ? k : '·';
        cells.push(c);
      }
      pre.append(...cells);
      run.box.append(head, pre);
      run.rows.push({ pre, cells, copy, text: '' });
    }
  }
  // render shows iteration k of a run. Heat: the iteration's wrongness; the
  // last iteration has none (nothing is re-masked after it), so it shows the
  // previous pass's, except on the cells re-filled since.
  function render(run, k) {
    const ev = run.iters[k];
    if (!ev || !ev.text) return;
    const prev = k > 0 ? run.iters[k - 1].remasked : null;
    const heat = $('heatmap').checked;
    let wsrc = ev.wrongness ? ev : null;
    let refilled = null;
    if (heat && !wsrc && k > 0 && run.iters[k - 1].wrongness) {
      wsrc = run.iters[k - 1];
      refilled = prev;
    }
    $('heat-legend').hidden = !(heat && wsrc);
    ev.text.forEach((text, b) => {
      const chars = Array.from(text);
      ensureRows(run, ev.text.length, chars.length);
      const row = run.rows[b];
      row.text = text;
      row.copy.disabled = false;
      const { pre, cells } = row;
      pre.classList.toggle('heat', !!(heat && wsrc));
      const fresh = prev ? new Set(prev[b]) : null;
      const dim = new Set(ev.remasked[b]);
      const re = refilled ? new Set(refilled[b]) : null;
      const w = heat && wsrc ? wsrc.wrongness[b] : null;
      for (let i = 0; i < cells.length; i++) {
        const c = cells[i];
        const ch = chars[i] === undefined ? '' : chars[i];
        if (c.textContent !== ch) c.textContent = ch;
        let cls = 'c';
        if (dim.has(i)) cls += ' dim';
        if (fresh ? fresh.has(i) : !run.kept.has(i)) cls += ' fresh';
        if (run.kept.has(i)) cls += ' keep';
        if (c.className !== cls) c.className = cls;
        const wi = w && !(re && re.has(i)) && w[i] !== null && w[i] !== undefined ? w[i] : null;
        if (wi !== null) c.style.setProperty('--w', (0.15 + 0.85 * wi).toFixed(3));
        else if (c.style.length) c.style.removeProperty('--w');
        c.title = wi !== null ? `critic: ${(wi * 100).toFixed(0)}% likely wrong` : '';
      }
    });
  }
  function showIteration(k) {
    scrubAt = k;
    for (const run of ui.runs) if (run.iters && run.iters.length) render(run, Math.min(k, run.iters.length - 1));
    $('scrub-val').textContent = `pass ${k + 1} of ${$('scrub').max}`;
  }

  const fmt = (x, d = 3) => (x === null || x === undefined ? '–' : Number(x).toFixed(d));
  // tokens/s with three significant digits (0.754, 8.12, 35.4, 1240).
  const rate = (x) => (x >= 100 ? Math.round(x).toLocaleString('en') : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(2));
  const secs = (x) => (x >= 10 ? x.toFixed(1) : x.toFixed(2)) + ' s';
  // timings are shown per stage only when every stage was measured (the
  // GPU device loop runs the stages in one submission: totals only).
  function timingLine(d) {
    const t = d.timings || {};
    const stages = ['forward', 'sampling', 'remasking', 'metrics'];
    const all = stages.every((k) => t[k] > 0) && stages.reduce((a, k) => a + t[k], 0) <= d.seconds * 1.05;
    return all ? ` (${stages.map((k) => `${k} ${secs(t[k])}`).join(', ')})` : '';
  }
  const METRIC_HELP = {
    judge: ['judge score', '0 to 1, higher is better', 'The judge model’s estimate that the text is human-written (1 − its machine-written score). Real held-out text scores about 0.86.'],
    self: ['self-confidence', 'log-probability, ≤ 0, higher is better', 'Mean log-probability the model gives its own final characters: near 0 means it is sure of every character.'],
    critic: ['critic mean', '0 to 1, lower is better', 'The model’s own mean probability that a character is wrong.'],
    steps: ['steps', 'passes this sample took', 'Method unmask: the steps this sample ran; a confidence threshold, blocks or an early commit make it adaptive, up to Passes.'],
    pct: ['critic p10 / p50 / p90', '0 to 1, lower is better', 'The 10th, 50th and 90th percentiles of the critic’s per-character wrongness.'],
  };
  function metrics() {
    const el = $('metrics');
    el.replaceChildren();
    for (const run of ui.runs) {
      const d = run.done;
      if (!d) continue;
      // The table scrolls sideways inside its box on a phone: focusable, named.
      const wrap = Object.assign(document.createElement('div'), { className: 'table-wrap', tabIndex: 0 });
      wrap.setAttribute('role', 'region');
      wrap.setAttribute('aria-label', `Quality table${run.label ? ' (' + run.label + ')' : ''}`);
      const th = (k) => `<th scope="col" title="${METRIC_HELP[k][2]}">${METRIC_HELP[k][0]}<small>${METRIC_HELP[k][1]}</small></th>`;
      // Method unmask reports each sample's own step count (adaptive).
      const steps = d.samples.some((s) => Number.isInteger(s.steps));
      const rows = d.samples
        .map((s, i) => `<tr><th scope="row">${i + 1}</th><td>${fmt(s.judge_score)}</td><td>${fmt(s.self_confidence)}</td><td>${s.critic ? fmt(s.critic.mean) : '–'}</td><td>${s.critic ? `${fmt(s.critic.p10)} / ${fmt(s.critic.p50)} / ${fmt(s.critic.p90)}` : '–'}</td>${steps ? `<td class="steps">${Number.isInteger(s.steps) ? s.steps : '–'}</td>` : ''}</tr>`)
        .join('');
      wrap.innerHTML = `<table><caption>Quality${run.label ? ' (' + run.label + ')' : ''}: hover a heading for its meaning</caption><thead><tr><th scope="col">sample</th>${th('judge')}${th('self')}${th('critic')}${th('pct')}${steps ? th('steps') : ''}</tr></thead><tbody>${rows}</tbody></table>`;
      const p = Object.assign(document.createElement('p'), { className: 'hint' });
      p.textContent = `${d.iterations_run} passes in ${secs(d.seconds)}${timingLine(d)} · ${rate(d.tokens_per_second)} characters/s · first text ${secs(run.ttft / 1000)} after the click · ${d.backend} · seed ${d.seed} · model ${d.model}, judge ${d.judge || 'none'}, re-masking ${d.strategy || '–'}, metric ${d.metric}${d.warnings.length ? ' · ' + d.warnings.join('; ') : ''}`;
      el.append(wrap, p);
    }
    el.hidden = !el.childElementCount;
  }
  const haveText = () => ui.runs.some((r) => r.rows && r.rows.some((x) => x.text));
  function syncActions() {
    const t = haveText() && ui.state !== 'running';
    $('copy').disabled = !t;
    $('download').disabled = !t;
  }
  const runText = (r) => (r.done ? r.done.samples.map((s) => s.text) : (r.rows || []).map((x) => x.text).filter(Boolean));
  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      setStatus($('gen-status'), `Copied ${Array.from(text).length} characters.`, 'good');
    } catch (e) {
      setStatus($('gen-status'), `Copying failed: ${e.message}. Select the text and copy it instead.`, 'error');
    }
  }

  // runOne streams one generation into its view. t0 is when the user asked
  // for it: the first text's time includes loading the model.
  async function runOne(run, signal, t0, webgpu) {
    const resp = await post('/v1/generate', { ...run.opts, stream: true, include_text: true, include_wrongness: $('heatmap').checked }, signal);
    if (!resp.ok) throw await apiError(resp);
    let tFirst = 0;
    const label = run.label ? ` (${run.label})` : '';
    await ndjson(resp, (ev) => {
      ui.events.push(ev.event);
      switch (ev.event) {
        case 'queued':
          phase(`Waiting for the engine: position ${ev.position} in the queue`);
          break;
        case 'start':
          run.start = ev;
          run.tStart = performance.now();
          run.total = ev.options.masking_ratios && ev.options.masking_ratios.length ? ev.options.masking_ratios.length : ev.options.iterations;
          phase(webgpu && !pipelinesBuilt ? `Preparing GPU kernels (first run in this page only), then pass 1 of ${run.total}${label}…` : `Pass 1 of ${run.total}${label}…`, 0);
          break;
        case 'iteration': {
          const now = performance.now();
          if (!run.iters.length) {
            run.ttft = now - t0;
            tFirst = now;
          }
          run.iters.push(ev);
          render(run, run.iters.length - 1);
          syncActions();
          // Time per pass: from the passes so far; after the first, from the
          // first alone (unless it included building the GPU kernels).
          const per = ev.iteration > 1 ? (now - tFirst) / (ev.iteration - 1) : webgpu && !pipelinesBuilt ? 0 : now - run.tStart;
          const left = ev.iterations - ev.iteration;
          phase(`Pass ${ev.iteration} of ${ev.iterations}${label}${left && per ? ` · about ${Math.ceil((left * per) / 1000)} s left` : ''}`, ev.iteration / ev.iterations);
          break;
        }
        case 'done':
          run.done = ev;
          break;
        case 'error':
          throw Object.assign(new Error(ev.error.message), { field: ev.error.field, code: ev.error.code });
      }
    });
    if (!run.done) throw new Error('the generation ended without its results');
  }

  // waitAbortable waits for p unless signal aborts first.
  const waitAbortable = (p, signal) =>
    new Promise((res, rej) => {
      if (signal.aborted) return rej(new DOMException('aborted', 'AbortError'));
      signal.addEventListener('abort', () => rej(new DOMException('aborted', 'AbortError')), { once: true });
      p.then(res, rej);
    });

  async function generate() {
    if (ui.state === 'running' || ui.pending) return;
    const clicked = performance.now();
    if (!DEFAULTS) {
      // Clicked while the engine starts: say so at once, run when it is up.
      ui.pending = true;
      ui.clickedAt = clicked;
      phase('Starting the engine (first visit: about 3.5 MB)… your run starts right after.', null);
      ui.firstChangeMs = performance.now() - clicked;
      $('stop').disabled = false;
      ui.readyP.then(() => {
        if (!ui.pending) return;
        ui.pending = false;
        generate();
      });
      return;
    }
    ui.clickedAt = clicked;
    clearInvalid();
    setStatus($('gen-status'), '');
    let base;
    try {
      base = request();
    } catch (e) {
      setStatus($('gen-status'), e.message, 'error');
      announce(e.message);
      if (e.field) markField(e.field);
      ui.state = 'invalid';
      ui.error = e.message;
      document.body.dataset.state = 'invalid';
      return;
    }
    if (base.seed === undefined) base.seed = Math.floor(Math.random() * 2 ** 31);
    const kept = new Map();
    if (base.template !== undefined) Array.from(base.template).forEach((c, i) => c !== base.placeholder && kept.set(i, c));
    else if (base.seed_text && base.seed_placement === 'prefix') Array.from(base.seed_text).forEach((c, i) => kept.set(i, c));
    const key = ui.history.length + 1;
    ui.runs = $('compare').checked
      ? [{ label: 'sampler head on', opts: { ...base, disable_sampler: false } }, { label: 'sampler head off (LM head)', opts: { ...base, disable_sampler: true } }]
      : [{ label: '', opts: base }];
    ui.runs.forEach((r, i) => Object.assign(r, { key: `${key}-${i}`, iters: [], kept }));
    ui.state = 'running';
    document.body.dataset.state = 'running';
    $('runs').replaceChildren();
    $('empty').hidden = true;
    $('scrub-row').hidden = true;
    $('metrics').hidden = true;
    $('legend').hidden = false;
    $('heat-legend').hidden = true;
    const len = base.template !== undefined ? Array.from(base.template).length : base.sequence_length;
    for (const run of ui.runs) {
      runView(run);
      ensureRows(run, base.num_samples, len);
    }
    syncActions();
    phase('Starting…', null);
    ui.firstChangeMs = performance.now() - clicked;
    // On a narrow screen the output is below the form: bring it up so the
    // run's progress is seen (Generate/Stop stay at the top of the screen).
    if ($('out').getBoundingClientRect().top > innerHeight - 160) $('compose').querySelector('.bar').scrollIntoView({ block: 'start' });
    const focusWasGenerate = document.activeElement === $('generate');
    abort = new AbortController();
    const signal = abort.signal;
    $('generate').disabled = true;
    $('stop').disabled = false;
    if (focusWasGenerate) $('stop').focus();
    announce('Generating.');
    const s = formState();
    try {
      if (!remask.server && !remask.engine) phase('Starting the engine (first visit: about 3.5 MB)…', null);
      await waitAbortable(remask.ready, signal);
      if (!DEFAULTS) await waitAbortable(ui.readyP, signal);
      const webgpu = !remask.server && remask.engine && remask.engine.webgpu;
      const lm = base.model || (ui.manifest && ui.manifest.default_model);
      await ensureModels([lm, base.judge, base.remasking_model], signal);
      for (const run of ui.runs) await runOne(run, signal, run === ui.runs[0] ? clicked : performance.now(), webgpu);
      if (webgpu) pipelinesBuilt = true;
      ui.state = 'done';
      const d = ui.runs[0].done;
      const tps = ui.runs.map((r) => `${rate(r.done.tokens_per_second)} characters/s${r.label ? ' (' + r.label + ')' : ''}`).join(', ');
      const secsAll = ui.runs.reduce((a, r) => a + r.done.seconds, 0);
      const msg = `Done: ${d.samples.length} sample${d.samples.length > 1 ? 's' : ''} × ${Array.from(d.samples[0].text).length} characters in ${secs((performance.now() - clicked) / 1000)} from the click (generation ${secs(secsAll)}, first text after ${secs(ui.runs[0].ttft / 1000)}), ${tps} on ${d.backend}.`;
      setStatus($('gen-status'), msg, 'good');
      announce(msg);
    } catch (e) {
      if (signal.aborted) {
        ui.state = 'stopped';
        const it = ui.runs.map((r) => r.iters.length);
        const msg = haveText() ? `Stopped after pass ${Math.max(...it)} of ${ui.runs[0].total || '?'}: the text so far is kept (Copy, Download).` : 'Stopped before any text was written.';
        setStatus($('gen-status'), msg);
        announce(msg);
        ui.error = null;
      } else {
        ui.state = 'error';
        const msg = `Generation failed: ${webMessage(e)}`;
        setStatus($('gen-status'), msg, 'error');
        announce(msg);
        ui.error = msg;
        if (e.field && LABELS[e.field]) markField(e.field);
      }
    } finally {
      endPhase();
      ui.stoppedAt = performance.now();
      const last = Math.max(0, ...ui.runs.map((r) => r.iters.length));
      $('scrub').max = Math.max(1, last);
      $('scrub').value = last;
      $('scrub-row').hidden = last < 2;
      if (last) showIteration(last - 1);
      else {
        // no text came: the masked canvas goes, the page says why above
        $('runs').replaceChildren();
        $('empty').hidden = false;
        $('legend').hidden = true;
      }
      metrics();
      $('generate').disabled = false;
      $('stop').disabled = true;
      if (document.activeElement === $('stop') || document.activeElement === document.body || !document.activeElement) $('generate').focus();
      syncActions();
      if (haveText()) addHistory(s);
      snippet();
      document.body.dataset.state = ui.state;
    }
  }
  function stop() {
    if (ui.pending) {
      ui.pending = false;
      endPhase();
      $('stop').disabled = true;
      ui.state = 'stopped';
      document.body.dataset.state = 'stopped';
      setStatus($('gen-status'), 'Stopped before the engine had started.');
    }
    if (abort) abort.abort();
  }

  // ---- history ---------------------------------------------------------------
  function addHistory(state) {
    const entry = { n: ui.history.length + 1, state, outcome: ui.state, runs: ui.runs.map((r) => ({ label: r.label, texts: runText(r), done: r.done || null, iters: r.iters, kept: r.kept, opts: r.opts, total: r.total, ttft: r.ttft })) };
    ui.history.push(entry);
    const o = entry.runs[0].opts;
    const li = document.createElement('li');
    const first = (entry.runs[0].texts[0] || '').replace(/\s+/g, ' ').slice(0, 60);
    li.append(`${o.num_samples}×${o.template ? Array.from(o.template).length : o.sequence_length}, ${o.masking_ratios ? o.masking_ratios.length : o.iterations} passes, seed ${o.seed}${entry.runs.length > 1 ? ', head on/off' : ''}${entry.outcome === 'stopped' ? ' (stopped)' : ''}: “${first}…” `);
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Restore' });
    b.setAttribute('aria-label', `Restore run ${entry.n}`);
    b.addEventListener('click', () => restore(entry));
    li.append(b);
    $('history').prepend(li);
    $('history-panel').hidden = false;
  }
  function restore(entry) {
    if (ui.state === 'running') return;
    applyState(entry.state);
    ui.runs = entry.runs.map((r, i) => ({ ...r, key: `h${entry.n}-${i}` }));
    $('runs').replaceChildren();
    $('empty').hidden = true;
    for (const run of ui.runs) {
      runView(run);
      if (run.iters.length) render(run, run.iters.length - 1);
    }
    const last = Math.max(0, ...ui.runs.map((r) => r.iters.length));
    $('scrub').max = Math.max(1, last);
    $('scrub').value = last;
    $('scrub-row').hidden = last < 2;
    $('legend').hidden = false;
    metrics();
    ui.state = entry.outcome;
    syncActions();
    setStatus($('gen-status'), `Run ${entry.n} restored: its settings and its text.`);
  }

  // ---- examples ----------------------------------------------------------------
  const EXAMPLES = [
    { label: 'Continue a line', state: { prompt: 'ROMEO:\nBut soft, what light', compare: false, heatmap: false } },
    { label: 'Fill a missing word', state: { prompt: 'ROMEO:\nBut soft, what light through yonder ______ breaks?\nIt is the east, and ______ is the sun.', compare: false, heatmap: false } },
    { label: 'Sampler head on vs off', state: { prompt: '', compare: true, heatmap: false } },
    { label: 'Critic heatmap', state: { prompt: 'KING:\n', heatmap: true, compare: false } },
    { label: 'Threshold schedule', state: { prompt: '', schedule_mode: 'threshold', start_ratio: 0.5, end_ratio: 0.05, heatmap: false, compare: false } },
  ];
  function buildExamples() {
    for (const ex of EXAMPLES) {
      const b = Object.assign(document.createElement('button'), { type: 'button', textContent: ex.label });
      b.addEventListener('click', () => {
        if (ui.state === 'running' || ui.pending) return;
        if (!DEFAULTS) {
          // the engine is still starting: say so now, run the example then
          ui.pending = true;
          ui.clickedAt = performance.now();
          phase('Starting the engine (first visit: about 3.5 MB)… your run starts right after.', null);
          ui.firstChangeMs = performance.now() - ui.clickedAt;
          $('stop').disabled = false;
          ui.readyP.then(() => {
            if (!ui.pending) return;
            ui.pending = false;
            b.click();
          });
          return;
        }
        resetDefaults();
        const small = PRESETS[0];
        if (small) {
          document.querySelector(`input[name=size][value="${small.name}"]`).checked = true;
          applyPreset(small.name);
        }
        applyState(ex.state);
        generate();
      });
      $('examples').append(b);
    }
  }

  function snippet() {
    let body;
    try {
      body = request();
    } catch (e) {
      body = null;
    }
    const where = remask.server || location.origin;
    $('snippet').textContent = body
      ? `// in this page; in your own page or in Node, the remask npm package's engine.fetch takes the same call (docs/js.md):\nconst r = await remask.fetch('/v1/generate', { method: 'POST', headers: { 'Content-Type': 'application/json' },\n  body: JSON.stringify(${JSON.stringify(body)}) });\nconsole.log((await r.json()).samples.map((s) => s.text));\n\n# a remask serve:\ncurl -s ${where}/v1/generate -H 'Content-Type: application/json' -d '${JSON.stringify(body).replace(/'/g, "'\\''")}'`
      : 'Fix the settings first (see the message under Generate).';
  }

  // ---- wiring ----------------------------------------------------------------
  function wire() {
    $('compose').addEventListener('submit', (e) => {
      e.preventDefault();
      generate();
    });
    $('prompt').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        generate();
      }
    });
    // Enter in an Advanced field generates too (the fields are outside the form).
    $('advanced').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && e.target.tagName === 'INPUT' && !['checkbox', 'radio', 'file'].includes(e.target.type) && e.target.id !== 'model-url' && e.target.id !== 'server-url') {
        e.preventDefault();
        generate();
      }
    });
    for (const el of optInputs) {
      el.addEventListener('input', () => {
        el.removeAttribute('aria-invalid');
        if (['num_samples', 'sequence_length', 'iterations', 'temperature'].includes(el.dataset.o)) syncSize();
        plan();
      });
    }
    $('reset').addEventListener('click', () => {
      resetDefaults();
      setStatus($('gen-status'), 'Every option is back to its default.');
    });
    $('stop').addEventListener('click', stop);
    $('share').addEventListener('click', async () => {
      const link = shareLink($('share-run').checked);
      history.replaceState(null, '', link);
      try {
        await navigator.clipboard.writeText(link);
        setStatus($('gen-status'), `Share link copied: it holds your text, the options and the seed${$('share-run').checked ? ', and runs at once' : ''}.`, 'good');
      } catch (_) {
        setStatus($('gen-status'), 'Share link: copy it from the address bar (the clipboard is not available here).');
      }
    });
    $('prompt').addEventListener('input', () => {
      $('prompt').removeAttribute('aria-invalid');
      plan();
    });
    $('mark').addEventListener('click', () => {
      const t = $('prompt');
      const p = holeChar();
      const [a, b] = [t.selectionStart, t.selectionEnd];
      if (a === b) {
        setStatus($('gen-status'), 'Select part of your text first; Mark holes turns it into holes to fill.');
        return t.focus();
      }
      const sel = Array.from(t.value.slice(a, b)).map((c) => (c === '\n' ? c : p)).join('');
      t.setRangeText(sel, a, b, 'select');
      plan();
      t.focus();
    });
    $('scrub').addEventListener('input', () => showIteration(Number($('scrub').value) - 1));
    $('heatmap').addEventListener('change', () => {
      if (ui.runs.some((r) => r.iters && r.iters.length && !r.iters[0].wrongness) && $('heatmap').checked && ui.state !== 'running')
        setStatus($('gen-status'), 'The heatmap needs the critic’s estimates: they are sent with the next run.');
      if (scrubAt !== null) showIteration(scrubAt);
    });
    $('copy').addEventListener('click', () => {
      const text = ui.runs.map((r) => (r.label ? `# ${r.label}\n` : '') + runText(r).join('\n\n---\n\n')).join('\n\n');
      copyText(text);
    });
    $('download').addEventListener('click', () => {
      const data = { share: shareLink(), state: ui.state, runs: ui.runs.map((r) => ({ label: r.label, request: r.opts, start: r.start || null, done: r.done || null, text: runText(r), iterations_seen: r.iters.length, time_to_first_text_ms: r.ttft ? Math.round(r.ttft) : null })) };
      const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' })), download: `remask-${ui.runs[0].opts.seed}.json` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
      setStatus($('gen-status'), `Downloaded ${a.download}.`, 'good');
    });
    $('load-url').addEventListener('click', () => {
      const v = $('model-url').value.trim();
      if (!v) return setStatus($('model-status'), 'Type the address of a .safetensors model first.', 'error');
      let url;
      try {
        if (!/^(https?:\/\/|\/|\.\.?\/)/i.test(v)) throw new Error();
        url = new URL(v, location.href);
        if (!/^https?:$/.test(url.protocol)) throw new Error();
      } catch (_) {
        return setStatus($('model-status'), `“${v}” is not a web address: paste a link that starts with https:// (or a path on this site such as models/x.safetensors starting with ./).`, 'error');
      }
      const shipped = ui.manifest && ui.manifest.models.find((m) => new URL(m.file, location.href).href === url.href);
      if (shipped) {
        const sel = addModel(shipped);
        if (sel) sel.value = shipped.id;
        return setStatus($('model-status'), `That is the shipped model “${shipped.id}”: it is selected${ui.loaded.has(shipped.id) ? ' and already loaded' : ''}.`, 'good');
      }
      loadFrom({ url: url.href, id: freeId(idOf(url.pathname)) }, url.href);
    });
    const drop = $('drop');
    const takeFile = (f) => {
      if (!f) return;
      if (remask.server) return setStatus($('model-status'), 'Dropped files load into the in-page engine only; choose “Run on: automatic” first.', 'error');
      loadFrom({ file: f, id: freeId(idOf(f.name)) }, f.name);
    };
    drop.addEventListener('click', () => $('file').click());
    drop.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), $('file').click()));
    $('file').addEventListener('change', () => takeFile($('file').files[0]));
    drop.addEventListener('dragover', (e) => (e.preventDefault(), drop.classList.add('over')));
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      takeFile(e.dataTransfer.files[0]);
    });
    $('clear-cache').addEventListener('click', () => remask.clearCache());
    $('model').addEventListener('change', () => useModel($('model').value));
    $('remasker').addEventListener('change', refreshCached);
    $('judge').addEventListener('change', refreshCached);
    opt('remasking').addEventListener('change', refreshCached);
    for (const k of ['method', 'ordering']) opt(k).addEventListener('change', () => {
      syncMethod();
      refreshCached();
    });
    $('model-switch').addEventListener('click', () => {
      if (ui.state === 'running' || !$('model-switch').dataset.to) return;
      useModel($('model-switch').dataset.to);
      setStatus($('gen-status'), `The next run uses ${$('model').value}.`);
    });
    $('where').addEventListener('change', switchWhere);
    $('server-url').addEventListener('change', () => $('where').value === 'server' && switchWhere());
    $('api-snippet').addEventListener('toggle', snippet);
    remask.on((m) => {
      if (m.type === 'model-source') {
        ui.sources = (ui.sources || []).concat([m]);
        $('cache-status').textContent = { cache: `${m.source}: from the cache (no download)`, network: `${m.source}: downloading`, memory: `${m.source}: from your file` }[m.from];
      } else if (m.type === 'cached') {
        $('cache-status').textContent = `${m.source}: checked and cached (${MB(m.bytes)} MB); the next visit will not download it.`;
        refreshCached();
      } else if (m.type === 'cache-cleared') {
        $('cache-status').textContent = m.ok ? 'Cache cleared: models will be downloaded again.' : `Nothing was cached${m.message ? ' (' + m.message + ')' : ''}.`;
        refreshCached();
      }
    });
  }
  async function switchWhere() {
    const w = $('where').value;
    if (w !== 'server') {
      remask.useServer(null);
      const want = w === 'auto' ? null : w;
      if ((params.get('backend') || null) !== want) {
        const u = new URL(location.href);
        if (want) u.searchParams.set('backend', want);
        else u.searchParams.delete('backend');
        u.hash = shareLink().split('#')[1] || '';
        location.assign(u.href);
        return;
      }
    } else {
      const v = $('server-url').value.trim();
      let url;
      try {
        url = new URL(v);
        if (!/^https?:$/.test(url.protocol)) throw new Error();
      } catch (_) {
        $('server-url').setAttribute('aria-invalid', 'true');
        $('server-url').focus();
        return setStatus($('engine'), v ? `“${v}” is not a server address: type one like http://127.0.0.1:8080.` : 'Type the address of a remask serve first, e.g. http://127.0.0.1:8080.', 'error');
      }
      $('server-url').removeAttribute('aria-invalid');
      remask.useServer(url.href);
    }
    ui.loaded.clear();
    if (await showEngine()) refreshCached();
  }
  // showEngine asks the engine (in-page or remote) for its health and says
  // what runs. Each call takes a generation number: an answer that arrives
  // after a newer call (e.g. the in-page engine's, after a switch to a
  // remote server) is dropped, never shown over the newer state.
  async function showEngine() {
    const el = $('engine');
    const gen = ++ui.engineGen;
    const server = remask.server;
    const stale = () => gen !== ui.engineGen || remask.server !== server;
    try {
      const resp = await remask.fetch('/v1/health');
      if (stale()) return false;
      if (!resp.ok) throw await apiError(resp);
      const h = await resp.json();
      if (stale()) return false;
      if (h.limits && h.limits.max_tokens) maxTokens = h.limits.max_tokens;
      if (remask.server) return setStatus(el, `Runs on the remask server at ${remask.server} (${h.backend}, ${h.models} models).`, 'good');
      const e = remask.engine;
      if (e.webgpu) setStatus(el, `Runs on your GPU with WebGPU (${e.adapter}).`, 'good');
      else if (e.gpu_problem === 'software')
        setStatus(el, `Runs on the CPU in this page: the only WebGPU adapter here (${e.adapter}) emulates a GPU in software and is slower than the CPU engine. You can still choose WebGPU under Advanced → Where it runs.`);
      else if (e.requested === 'cpu') setStatus(el, 'Runs on the CPU in this page (as chosen): Go on one thread; sizes are kept small.');
      else {
        const why = { no_adapter: 'this browser offers no WebGPU adapter', limits: 'the WebGPU adapter’s limits are too small', device: 'WebGPU failed to start' }[e.gpu_problem] || 'WebGPU is unavailable';
        setStatus(el, `Runs on the CPU in this page (one thread, slower than a GPU): ${why}. Sizes are kept small.`);
      }
    } catch (e) {
      if (stale()) return false;
      setStatus(el, `The engine is not reachable: ${webMessage(e)}`, 'error');
    }
    return true;
  }

  async function main() {
    if ('serviceWorker' in navigator && location.protocol !== 'file:') navigator.serviceWorker.register('sw.js').catch(() => {});
    wire();
    buildExamples();
    // A field's one-line help (its label's title) is also the field's own
    // description, for screen readers and keyboard users.
    for (const l of document.querySelectorAll('label[title]')) {
      const f = l.querySelector('input, select');
      if (f && !f.title) f.title = l.title;
    }
    $('where').value = ['gpu', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto';
    let readyResolve;
    ui.readyP = new Promise((r) => (readyResolve = r));
    try {
      ui.manifest = await (await fetch('manifest.json')).json();
      for (const m of ui.manifest.models) addModel(m);
      applyDefaultModels(); // final once the engine says what it runs on
      refreshCached();
    } catch (e) {
      setStatus($('model-status'), `The site's model list (manifest.json) could not be read: ${e.message}. Reload the page.`, 'error');
    }
    document.body.dataset.state = 'loading';
    ui.state = 'loading';
    try {
      await remask.ready;
    } catch (e) {
      ui.state = 'error';
      document.body.dataset.state = 'error';
      return setStatus($('engine'), `The in-page engine did not start: ${e.message}`, 'error');
    }
    const e = remask.engine;
    DEFAULTS = e.option_defaults;
    PRESETS = (e.presets[e.preset_kind] || []).map((p) => ({ ...p }));
    maxTokens = e.max_tokens || Infinity;
    buildSizes();
    resetDefaults();
    readyResolve();
    const shared = fromHash();
    await showEngine();
    if (ui.notices.length) setStatus($('gen-status'), ui.notices.join(' '), 'error');
    plan();
    refreshCached();
    ui.readyMs = performance.now();
    if (ui.state !== 'running') {
      ui.state = 'ready';
      document.body.dataset.state = 'ready';
    }
    if (shared && shared.run && ui.state === 'ready') generate();
  }
  main();
})();
