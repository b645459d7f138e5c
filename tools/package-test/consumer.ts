// consumer.ts: TypeScript that uses the remask package's declarations
// (index.d.ts) the way docs/js.md does; test.mjs type-checks it with tsc
// --strict in the temporary project. A declaration that drifts from the
// documented API fails the check.
import { Remask, RemaskError, NoWebGPUError, AdapterTooSmallError, ModelInvalidError, ModelNotFoundError, InvalidOptionError, EngineError, errorFromAPI } from 'remask';
import type { EngineInfo, GenerateEvent, ModelListing, Notice } from 'remask';

export async function demo(bytes: Uint8Array): Promise<string> {
  const engine: Remask = await Remask.create({ backend: 'auto', limits: 'default', onNotice: (n: Notice) => console.log(n.type) });
  const info: EngineInfo = engine.info;
  const reason: string | null = info.fallbackReason;
  console.log(info.backend === 'webgpu' ? info.adapter : reason);
  const m: ModelListing = await engine.loadModel('https://example.com/m.safetensors', { sha256: 'ab'.repeat(32), onProgress: ({ loaded, total }) => console.log(loaded, total ?? '?') });
  await engine.loadModel(bytes, { id: 'mine' });
  const ctl = new AbortController();
  let text = '';
  for await (const ev of engine.generate({ model: m.id, num_samples: 1, sequence_length: 64, seed: 1 }, { signal: ctl.signal })) {
    const e: GenerateEvent = ev;
    if (e.event === 'iteration') console.log(e.iteration, e.iterations);
    else if (e.event === 'done') text = e.samples[0].text;
  }
  const r: Response = await engine.fetch('/v1/health');
  console.log(r.status, await engine.clearCache());
  engine.on((n) => n.type === 'cached' && console.log(n.bytes))();
  engine.close();
  return text;
}

export function kind(e: unknown): string {
  if (e instanceof NoWebGPUError || e instanceof AdapterTooSmallError) return 'gpu ' + e.code;
  if (e instanceof ModelInvalidError || e instanceof ModelNotFoundError) return 'model ' + e.code;
  if (e instanceof InvalidOptionError) return 'option ' + (e.field ?? '');
  if (e instanceof EngineError) return 'engine';
  if (e instanceof RemaskError) return e.code;
  if (e instanceof DOMException && e.name === 'AbortError') return 'aborted';
  return String(errorFromAPI({ code: 'invalid_model', message: 'x' }, 422).code);
}
