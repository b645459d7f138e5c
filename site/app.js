// app.js: the demo page. Everything it runs goes through window.remask.fetch
// (remask.js): the same API calls reach the in-page engine or a remote server.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const ui = { runs: [], events: [], state: 'starting', manifest: null, loaded: new Set() };
  window.remaskUI = ui; // for scripts and the browser tests

  // Defaults of every option (engine/api's), then the presets on top.
  const BASE = {
    method: 'diffusion', temperature: 0.8, top_p: 1, schedule_mode: 'ratio', start_ratio: 0.95, end_ratio: 0.05,
    randomness_strength: 0, remasking: 'auto', quality_metric: 'auto', sampler_neighbors: '', seed_placement: 'random',
    unknown_chars: 'error', compat: '', masking_ratios: '', seed_text: '', placeholder: '_', disable_sampler: false,
  };
  const PRESETS = {
    gpu: {
      quick: { num_samples: 2, sequence_length: 128, iterations: 8 },
      balanced: { num_samples: 4, sequence_length: 256, iterations: 15 },
      quality: { num_samples: 8, sequence_length: 512, iterations: 30, temperature: 0.7 },
    },
    cpu: {
      quick: { num_samples: 1, sequence_length: 64, iterations: 6 },
      balanced: { num_samples: 1, sequence_length: 128, iterations: 10 },
      quality: { num_samples: 2, sequence_length: 256, iterations: 15, temperature: 0.7 },
    },
  };
  let sizes = 'gpu';
  let abort = null;
  let scrubAt = null;

  const optInputs = Array.from(document.querySelectorAll('[data-o]'));
  const setStatus = (el, text, cls) => {
    el.textContent = text;
    el.className = cls || '';
  };

  // ---- form <-> options ----------------------------------------------------
  function formState() {
    const s = { preset: $('preset').value, seed: $('o-seed').value, model: $('model').value, judge: $('judge').value, remasking_model: $('remasker').value,
      template: $('use-template').checked ? $('template').value : null, heatmap: $('heatmap').checked, compare: $('compare').checked };
    for (const el of optInputs) s[el.dataset.o] = el.type === 'checkbox' ? el.checked : el.value;
    return s;
  }
  function applyState(s) {
    for (const el of optInputs) {
      const k = el.dataset.o;
      if (!(k in s)) continue;
      if (el.type === 'checkbox') el.checked = !!s[k];
      else el.value = s[k];
    }
    if ('preset' in s) $('preset').value = s.preset;
    if (s.seed !== undefined && s.seed !== '') $('o-seed').value = s.seed;
    if (s.model && [...$('model').options].some((o) => o.value === s.model)) $('model').value = s.model;
    if (s.judge && [...$('judge').options].some((o) => o.value === s.judge)) $('judge').value = s.judge;
    if (s.remasking_model && [...$('remasker').options].some((o) => o.value === s.remasking_model)) $('remasker').value = s.remasking_model;
    if (typeof s.template === 'string') {
      $('use-template').checked = true;
      $('template').value = s.template;
    } else if ('template' in s) $('use-template').checked = false;
    if ('heatmap' in s) $('heatmap').checked = !!s.heatmap;
    if ('compare' in s) $('compare').checked = !!s.compare;
    countHoles();
  }
  function applyPreset(name) {
    if (name === 'custom') return;
    applyState({ ...BASE, ...PRESETS[sizes][name] });
  }
  // request turns the form into a POST /v1/generate body.
  function request() {
    const s = formState();
    const num = (k) => (s[k] === '' ? undefined : Number(s[k]));
    const r = {
      model: s.model || undefined, judge: s.judge, method: s.method, num_samples: num('num_samples'),
      iterations: num('iterations'), temperature: num('temperature'), top_p: num('top_p'), schedule_mode: s.schedule_mode,
      start_ratio: num('start_ratio'), end_ratio: num('end_ratio'), randomness_strength: num('randomness_strength'),
      remasking: s.remasking, quality_metric: s.quality_metric, seed_placement: s.seed_placement, unknown_chars: s.unknown_chars,
      placeholder: s.placeholder || '_', disable_sampler: s.disable_sampler, compat: s.compat.trim(),
    };
    if (s.sampler_neighbors) r.sampler_neighbors = s.sampler_neighbors;
    if (s.remasking_model) r.remasking_model = s.remasking_model;
    if (s.masking_ratios.trim()) r.masking_ratios = s.masking_ratios.split(/[\s,]+/).filter(Boolean).map(Number);
    if (s.template !== null) r.template = s.template;
    else {
      r.sequence_length = num('sequence_length');
      if (s.seed_text) r.seed_text = s.seed_text;
    }
    if (s.seed !== '') r.seed = Number(s.seed);
    return r;
  }
  function shareLink() {
    const u = new URL(location.href);
    u.hash = 'o=' + encodeURIComponent(JSON.stringify(formState()));
    return u.href;
  }
  function fromHash() {
    const m = /^#o=(.*)$/.exec(location.hash);
    if (!m) return false;
    try {
      applyState(JSON.parse(decodeURIComponent(m[1])));
      return true;
    } catch (e) {
      setStatus($('gen-status'), 'The share link is damaged: its options could not be read.', 'error');
      return false;
    }
  }
  function countHoles() {
    const p = (document.querySelector('[data-o=placeholder]').value || '_')[0];
    const n = Array.from($('template').value).filter((c) => c === p).length;
    $('holes').textContent = `${n} character${n === 1 ? '' : 's'} to generate of ${Array.from($('template').value).length}`;
  }

  // ---- API helpers ---------------------------------------------------------
  async function apiError(resp) {
    let e;
    try {
      e = (await resp.json()).error;
    } catch (_) {}
    return new Error(e ? `${e.message}${e.field ? ` (field ${e.field})` : ''} [${e.code}]` : `HTTP ${resp.status} ${resp.statusText}`);
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
    remask.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });

  // load puts a model on the engine with a progress bar; body is a POST
  // /v1/models body. It returns the model's listing.
  async function load(body, what) {
    const bar = $('progress');
    const st = $('model-status');
    setStatus(st, `Loading ${what}…`);
    const resp = await post('/v1/models', body);
    if (!resp.ok) throw await apiError(resp);
    let info = null;
    await ndjson(resp, (ev) => {
      if (ev.event === 'progress') {
        bar.hidden = false;
        if (ev.total) {
          bar.max = ev.total;
          bar.value = ev.bytes;
          setStatus(st, `Loading ${what}: ${(ev.bytes / 1e6).toFixed(1)} of ${(ev.total / 1e6).toFixed(1)} MB`);
        } else bar.removeAttribute('value');
      } else if (ev.event === 'queued') setStatus(st, `Loading ${what}: waiting for the device (position ${ev.position})`);
      else if (ev.event === 'loaded') info = ev.model;
      else if (ev.event === 'error') throw new Error(`${ev.error.message} [${ev.error.code}]`);
    });
    bar.hidden = true;
    if (!info) throw new Error(`loading ${what} ended without an answer`);
    ui.loaded.add(info.id);
    setStatus(st, `${info.id}: ${info.kind.replace('_', ' ')}, ${info.n_layer} layers, ${(info.parameters / 1e6).toFixed(1)} M parameters, ${info.dtype}, context ${info.block_size} characters.`, 'good');
    return info;
  }
  async function ensure(id) {
    if (id && id !== 'none' && !ui.loaded.has(id)) await load({ id }, id);
  }
  function addModel(info) {
    const sel = { sequence_scorer: $('judge'), language_model: $('model'), token_classifier: $('remasker') }[info.kind];
    if (!sel) return;
    if (![...sel.options].some((o) => o.value === info.id)) sel.add(new Option(info.id, info.id));
    sel.value = info.id;
  }
  async function loadFrom(body, what) {
    try {
      addModel(await load(body, what));
    } catch (e) {
      $('progress').hidden = true;
      setStatus($('model-status'), `Could not load ${what}: ${e.message}`, 'error');
    }
  }
  const idOf = (name) => name.replace(/^.*\//, '').replace(/\.safetensors$/, '').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64) || 'model';

  // ---- the denoising view --------------------------------------------------
  function runView(run) {
    const box = document.createElement('div');
    box.className = 'run';
    if (run.label) box.append(Object.assign(document.createElement('h3'), { textContent: run.label }));
    run.box = box;
    run.rows = [];
    $('runs').append(box);
  }
  function ensureRows(run, n, T) {
    while (run.rows.length < n) {
      const pre = document.createElement('pre');
      pre.className = 'sample';
      pre.setAttribute('aria-label', `sample ${run.rows.length + 1}`);
      const cells = [];
      for (let i = 0; i < T; i++) {
        const c = document.createElement('span');
        c.className = 'c mask';
        c.textContent = '·';
        cells.push(c);
      }
      pre.append(...cells);
      run.box.append(pre);
      run.rows.push({ pre, cells });
    }
  }
  function render(run, k) {
    const ev = run.iters[k];
    if (!ev || !ev.text) return;
    const prev = k > 0 ? run.iters[k - 1].remasked : null;
    const heat = $('heatmap').checked;
    ev.text.forEach((text, b) => {
      const chars = Array.from(text);
      ensureRows(run, ev.text.length, chars.length);
      const { pre, cells } = run.rows[b];
      pre.classList.toggle('heat', heat && !!ev.wrongness);
      const fresh = prev ? new Set(prev[b]) : null;
      const dim = new Set(ev.remasked[b]);
      const w = heat && ev.wrongness ? ev.wrongness[b] : null;
      for (let i = 0; i < cells.length; i++) {
        const c = cells[i];
        const ch = chars[i] === undefined ? '' : chars[i];
        if (c.textContent !== ch) c.textContent = ch;
        let cls = 'c';
        if (dim.has(i)) cls += ' dim';
        else if (fresh ? fresh.has(i) : !run.kept.has(i)) cls += ' fresh';
        if (run.kept.has(i)) cls += ' keep';
        if (c.className !== cls) c.className = cls;
        if (w) c.style.setProperty('--w', w[i] === null ? 0 : (0.85 * w[i]).toFixed(3));
        else if (c.style.length) c.style.removeProperty('--w');
      }
    });
  }
  function showIteration(k) {
    scrubAt = k;
    for (const run of ui.runs) render(run, Math.min(k, run.iters.length - 1));
    $('scrub-val').textContent = `${k + 1} / ${$('scrub').max}`;
  }

  const fmt = (x, d = 3) => (x === null || x === undefined ? '–' : Number(x).toFixed(d));
  function metrics() {
    const parts = [];
    for (const run of ui.runs) {
      const d = run.done;
      if (!d) continue;
      const rows = d.samples
        .map((s, i) => `<tr><td>${i + 1}</td><td>${fmt(s.judge_score)}</td><td>${fmt(s.self_confidence)}</td><td>${s.critic ? fmt(s.critic.mean, 4) : '–'}</td><td>${s.critic ? `${fmt(s.critic.p10, 4)} / ${fmt(s.critic.p50, 4)} / ${fmt(s.critic.p90, 4)}` : '–'}</td></tr>`)
        .join('');
      const t = d.timings;
      parts.push(`<h3>${run.label || 'Results'}</h3>
<table><thead><tr><th>sample</th><th>judge score</th><th>self-confidence</th><th>critic mean</th><th>critic p10 / p50 / p90</th></tr></thead><tbody>${rows}</tbody></table>
<p class="hint">${d.iterations_run} iterations in ${d.seconds.toFixed(2)} s · <b class="tps">${Math.round(d.tokens_per_second)} tokens/s</b> · first text ${(run.ttft / 1000).toFixed(2)} s after the click · forward ${t.forward.toFixed(2)} s, sampling ${t.sampling.toFixed(2)} s, remasking ${t.remasking.toFixed(2)} s, metrics ${t.metrics.toFixed(2)} s · ${d.backend} · seed ${d.seed} · model ${d.model}, judge ${d.judge}, remasking ${d.strategy || '–'}, metric ${d.metric}${d.warnings.length ? ' · ' + d.warnings.join('; ') : ''}</p>`);
    }
    const el = $('metrics');
    el.innerHTML = parts.join('');
    el.hidden = parts.length === 0;
    $('out-actions').hidden = parts.length === 0;
  }

  // runOne streams one generation into its view. t0 is when the user asked
  // for it: the first text's time includes loading the model.
  async function runOne(run, signal, t0) {
    const resp = await post('/v1/generate', { ...run.opts, stream: true, include_text: true, include_wrongness: $('heatmap').checked }, signal);
    if (!resp.ok) throw await apiError(resp);
    await ndjson(resp, (ev) => {
      ui.events.push(ev.event);
      switch (ev.event) {
        case 'queued':
          setStatus($('gen-status'), `Waiting for the device: position ${ev.position}`);
          break;
        case 'start':
          run.start = ev;
          setStatus($('gen-status'), `Generating${run.label ? ' (' + run.label + ')' : ''} on ${ev.backend}…`);
          break;
        case 'iteration':
          if (!run.iters.length) run.ttft = performance.now() - t0;
          run.iters.push(ev);
          render(run, run.iters.length - 1);
          setStatus($('gen-status'), `Iteration ${ev.iteration} of ${ev.iterations}${run.label ? ' (' + run.label + ')' : ''}`);
          break;
        case 'done':
          run.done = ev;
          break;
        case 'error':
          throw new Error(`${ev.error.message} [${ev.error.code}]`);
      }
    });
    if (!run.done) throw new Error('the generation ended without its results');
  }

  async function generate() {
    const clicked = performance.now();
    const base = request();
    if (base.seed === undefined) {
      base.seed = Math.floor(Math.random() * 2 ** 31);
      $('o-seed').value = base.seed;
    }
    history.replaceState(null, '', shareLink());
    const kept = new Set();
    if (base.template !== undefined) Array.from(base.template).forEach((c, i) => c !== base.placeholder && kept.add(i));
    ui.runs = $('compare').checked
      ? [{ label: 'sampler head on', opts: { ...base, disable_sampler: false } }, { label: 'sampler head off (LM head)', opts: { ...base, disable_sampler: true } }]
      : [{ label: '', opts: base }];
    $('runs').replaceChildren();
    $('scrub-row').hidden = true;
    $('metrics').hidden = true;
    $('out-actions').hidden = true;
    abort = new AbortController();
    $('generate').disabled = true;
    $('stop').disabled = false;
    ui.state = 'running';
    document.body.dataset.state = 'running';
    try {
      await ensure(base.model || (ui.manifest && ui.manifest.default_model));
      if (base.judge !== 'none') await ensure(base.judge);
      if (base.remasking_model) await ensure(base.remasking_model);
      for (const run of ui.runs) {
        run.iters = [];
        run.kept = kept;
        runView(run);
      }
      for (const run of ui.runs) {
        await runOne(run, abort.signal, run === ui.runs[0] ? clicked : performance.now());
      }
      const last = Math.max(...ui.runs.map((r) => r.iters.length));
      $('scrub').max = last;
      $('scrub').value = last;
      $('scrub-row').hidden = last < 2;
      showIteration(last - 1);
      metrics();
      const d = ui.runs[0].done;
      setStatus($('gen-status'), `Done: ${d.samples.length} sample${d.samples.length > 1 ? 's' : ''} × ${d.samples[0].text.length} characters, ${Math.round(d.tokens_per_second)} tokens/s on ${d.backend}.`, 'good');
      ui.state = 'done';
    } catch (e) {
      const msg = abort.signal.aborted ? 'Stopped.' : `Generation failed: ${e.message}`;
      setStatus($('gen-status'), msg, abort.signal.aborted ? '' : 'error');
      ui.state = abort.signal.aborted ? 'stopped' : 'error';
      ui.error = msg;
    } finally {
      $('generate').disabled = false;
      $('stop').disabled = true;
      document.body.dataset.state = ui.state;
    }
  }

  // ---- wiring ----------------------------------------------------------------
  function wire() {
    $('preset').addEventListener('change', () => applyPreset($('preset').value));
    for (const el of optInputs) el.addEventListener('change', () => el.dataset.o !== 'placeholder' && ($('preset').value = 'custom'));
    $('new-seed').addEventListener('click', () => ($('o-seed').value = Math.floor(Math.random() * 2 ** 31)));
    $('generate').addEventListener('click', generate);
    $('stop').addEventListener('click', () => abort && abort.abort());
    $('share').addEventListener('click', async () => {
      const link = shareLink();
      history.replaceState(null, '', link);
      try {
        await navigator.clipboard.writeText(link);
        setStatus($('gen-status'), 'Share link copied: it holds the options and the seed.', 'good');
      } catch (_) {
        setStatus($('gen-status'), `Share link (copy it from the address bar): ${link}`);
      }
    });
    $('template').addEventListener('input', countHoles);
    document.querySelector('[data-o=placeholder]').addEventListener('input', countHoles);
    $('mark').addEventListener('click', () => {
      const t = $('template');
      const p = (document.querySelector('[data-o=placeholder]').value || '_')[0];
      const [a, b] = [t.selectionStart, t.selectionEnd];
      if (a === b) return setStatus($('gen-status'), 'Select the text to turn into holes first.');
      const sel = Array.from(t.value.slice(a, b)).map((c) => (c === '\n' ? c : p)).join('');
      t.setRangeText(sel, a, b, 'select');
      $('use-template').checked = true;
      countHoles();
      t.focus();
    });
    $('scrub').addEventListener('input', () => showIteration(Number($('scrub').value) - 1));
    $('heatmap').addEventListener('change', () => scrubAt !== null && showIteration(scrubAt));
    $('copy').addEventListener('click', async () => {
      const text = ui.runs.map((r) => (r.label ? `# ${r.label}\n` : '') + r.done.samples.map((s) => s.text).join('\n\n---\n\n')).join('\n\n');
      try {
        await navigator.clipboard.writeText(text);
        setStatus($('gen-status'), 'Text copied.', 'good');
      } catch (e) {
        setStatus($('gen-status'), `Copying failed: ${e.message}`, 'error');
      }
    });
    $('download').addEventListener('click', () => {
      const data = { share: shareLink(), runs: ui.runs.map((r) => ({ label: r.label, request: r.opts, start: r.start, done: r.done, time_to_first_text_ms: Math.round(r.ttft) })) };
      const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' })), download: `remask-${ui.runs[0].done.seed}.json` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    });
    $('load-url').addEventListener('click', () => {
      const v = $('model-url').value.trim();
      if (!v) return setStatus($('model-status'), 'Type the URL of a .safetensors model first.', 'error');
      let url;
      try {
        url = new URL(v, location.href).href;
      } catch (_) {
        return setStatus($('model-status'), `${v} is not a URL.`, 'error');
      }
      loadFrom({ url, id: idOf(url) }, url);
    });
    const drop = $('drop');
    const takeFile = (f) => {
      if (!f) return;
      if (remask.server) return setStatus($('model-status'), 'Dropped files load into the in-page engine only; switch "Run on" to this browser.', 'error');
      loadFrom({ path: remask.dropFile(f), id: idOf(f.name) }, f.name);
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
    for (const r of document.querySelectorAll('input[name=where]')) r.addEventListener('change', switchWhere);
    $('server-url').addEventListener('change', switchWhere);
    remask.on((m) => {
      if (m.type === 'model-source') {
        ui.sources = (ui.sources || []).concat([m]);
        $('cache-status').textContent = { cache: `${m.source}: from the cache (no download)`, network: `${m.source}: downloading`, file: `${m.source}: from your file` }[m.from];
      } else if (m.type === 'cached') $('cache-status').textContent = `${m.source}: verified and cached (${(m.bytes / 1e6).toFixed(1)} MB); the next visit will not download it.`;
      else if (m.type === 'cache-cleared') {
        $('cache-status').textContent = m.ok ? 'Cache cleared: models will be downloaded again.' : `Nothing was cached${m.message ? ' (' + m.message + ')' : ''}.`;
      }
    });
  }
  async function switchWhere() {
    const server = document.querySelector('input[name=where]:checked').value === 'server';
    const url = $('server-url').value.trim() || location.origin;
    remask.useServer(server ? url : null);
    $('where-now').textContent = server ? url : 'this browser';
    ui.loaded.clear();
    await showEngine();
  }
  async function showEngine() {
    const el = $('engine');
    try {
      const h = await (await remask.fetch('/v1/health')).json();
      if (remask.server) return setStatus(el, `Remote server ${remask.server}: ${h.backend}, ${h.models} models.`, 'good');
      const e = remask.engine;
      if (e.webgpu) {
        sizes = 'gpu';
        setStatus(el, `WebGPU: ${e.adapter}. Engine ready in ${(remask.startup.startMs / 1000).toFixed(1)} s.`, 'good');
      } else if (e.requested === 'cpu') {
        sizes = 'cpu';
        setStatus(el, `CPU backend (asked for with ?backend=cpu): Go on one thread in this tab; sizes are kept small (${e.defaults.num_samples} × ${e.defaults.sequence_length} characters, ${e.defaults.iterations} iterations).`);
      } else {
        sizes = 'cpu';
        const why = {
          no_adapter: 'this browser offers no WebGPU adapter (WebGPU is off, unsupported, or blocked for this GPU)',
          limits: `the WebGPU adapter's limits are too small (${e.gpu_error})`,
          device: `WebGPU failed (${e.gpu_error})`,
        }[e.gpu_problem] || `WebGPU is unavailable (${e.gpu_error})`;
        setStatus(el, `No GPU: ${why}. Running on the CPU in this tab, one thread, about 30× slower: sizes are kept small (${e.defaults.num_samples} × ${e.defaults.sequence_length} characters, ${e.defaults.iterations} iterations).`, 'warn');
      }
    } catch (e) {
      setStatus(el, `The engine is not reachable: ${e.message}`, 'warn');
    }
  }

  async function main() {
    if ('serviceWorker' in navigator && location.protocol !== 'file:') navigator.serviceWorker.register('sw.js').catch(() => {});
    wire();
    applyState({ ...BASE, ...PRESETS.gpu.quick });
    try {
      ui.manifest = await (await fetch('manifest.json')).json();
      for (const m of ui.manifest.models) addModel({ id: m.id, kind: m.kind });
      $('model').value = ui.manifest.default_model;
      $('judge').value = 'none';
    } catch (e) {
      setStatus($('model-status'), `The site's model list (manifest.json) could not be read: ${e.message}`, 'error');
    }
    const shared = fromHash();
    $('generate').disabled = true;
    try {
      await remask.ready;
    } catch (e) {
      ui.state = 'error';
      document.body.dataset.state = 'error';
      return setStatus($('engine'), `The in-page engine did not start: ${e.message}`, 'warn');
    }
    await showEngine();
    if (!shared) {
      applyPreset($('preset').value);
      if (sizes === 'gpu' && ui.manifest && ui.manifest.default_judge) $('judge').value = ui.manifest.default_judge;
    }
    $('generate').disabled = false;
    ui.state = 'ready';
    document.body.dataset.state = 'ready';
  }
  main();
})();
