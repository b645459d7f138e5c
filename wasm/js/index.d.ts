// Type declarations of the remask package (index.js); docs/js.md documents it.

/** Which engine to run: 'auto' (WebGPU on a hardware adapter, else the CPU), 'webgpu' (any WebGPU adapter, or NoWebGPUError), 'cpu'. */
export type Backend = 'auto' | 'webgpu' | 'cpu';

/** Which device limits to ask for: the adapter's own (the default), or the WebGPU spec's defaults (what every adapter has). */
export type Limits = 'adapter' | 'default';

/** A model of the engine's library, loadable by id. */
export interface LibraryModel {
  id: string;
  /** Its URL (relative to the page, or in Node to the working directory; in Node also a file path). */
  url: string;
  /** The sha256 (hex) its bytes must have; a mismatch fails the load with ModelInvalidError. */
  sha256?: string;
}

/** A notice of the engine's worker (engine.on, onNotice). */
export type Notice =
  | { type: 'model-source'; source: string; from: 'network' | 'cache' | 'file' | 'memory' }
  | { type: 'cached'; source: string; bytes: number }
  | { type: 'cache-cleared'; ok: boolean; message?: string }
  | { type: 'model-invalid'; source: string; message: string };

export interface CreateOptions {
  backend?: Backend;
  limits?: Limits;
  /** The engine's worker script (default: engine-worker.js next to index.js). */
  workerURL?: string | URL;
  /** The engine's wasm (default: remask.wasm next to index.js), or its bytes. */
  wasmURL?: string | URL | ArrayBuffer | ArrayBufferView;
  /** The library: models that loadModel(id) and generate({model: id}) find by id. */
  models?: LibraryModel[];
  /** The Cache API cache for downloaded models (browsers; default 'remask-models-v1'); false: none. */
  cache?: string | false;
  /** Node: Dawn's options for the webgpu package's create(), e.g. ['enable-dawn-features=allow_unsafe_apis']. */
  dawnFlags?: string[];
  /** Aborting it stops the start (the worker is terminated); create rejects with an AbortError. */
  signal?: AbortSignal;
  onNotice?: (notice: Notice) => void;
}

/** What runs: engine.info. */
export interface EngineInfo {
  backend: 'webgpu' | 'cpu';
  /** The Go backend's own name, e.g. "cpu" or "webgpu: SwiftShader driver 5.0.0 (vulkan)". */
  backendName: string;
  /** The WebGPU adapter's name, when one was found (also when it was not used). */
  adapter: string | null;
  /** Why the engine runs on the CPU (null on WebGPU). */
  fallbackReason: string | null;
  /** The kind of problem behind the fallback: no_adapter, limits, device, software, no_webgpu. */
  gpu_problem?: string;
  requested: string;
  limits: Limits;
  runtime: 'browser' | 'node';
  webgpu: boolean;
  /** The largest num_samples x sequence_length of one request. */
  max_tokens: number;
  /** The defaults of every generate option on this engine. */
  option_defaults: Record<string, unknown>;
  [key: string]: unknown;
}

export interface LoadOptions {
  /** The model's id (default: the file name without .safetensors). */
  id?: string;
  /** The sha256 (hex) the file must have. */
  sha256?: string;
  onProgress?: (progress: { loaded: number; total: number | null }) => void;
  /** Called while the load waits for a running generation to end; position 1 is next. */
  onQueued?: (position: number) => void;
  signal?: AbortSignal;
}

/** A model's listing (GET /v1/models). */
export interface ModelListing {
  id: string;
  kind: string;
  n_layer: number;
  n_head: number;
  n_embd: number;
  block_size: number;
  vocab_size: number;
  parameters: number;
  dtype: string;
  bytes: number;
  loaded: boolean;
  source: string;
  heads: { critic: boolean; sampler: boolean };
  [key: string]: unknown;
}

/** The options of POST /v1/generate (docs/api.md); stream is always on. */
export interface GenerateOptions {
  model?: string;
  judge?: string;
  remasking_model?: string;
  method?: 'diffusion' | 'multinomial' | 'unmask';
  num_samples?: number;
  sequence_length?: number;
  iterations?: number;
  temperature?: number;
  top_p?: number;
  schedule_mode?: 'ratio' | 'threshold';
  start_ratio?: number;
  end_ratio?: number;
  masking_ratios?: number[];
  randomness_strength?: number;
  seed_text?: string;
  seed_placement?: 'random' | 'prefix';
  template?: string;
  placeholder?: string;
  unknown_chars?: 'error' | 'drop';
  seed?: number;
  remasking?: 'auto' | 'critic' | 'calibrated' | 'self' | 'random' | 'model';
  disable_sampler?: boolean;
  sampler_neighbors?: 'zeros' | 'embeddings';
  quality_metric?: 'auto' | 'judge' | 'node' | 'self' | 'none';
  ordering?: 'confidence' | 'margin' | 'entropy' | 'random';
  order_temperature?: number;
  unmask_schedule?: 'linear' | 'cosine' | 'ratio';
  confidence_threshold?: number;
  block_length?: number;
  early_commit_gap?: number;
  compat?: string;
  stream?: true;
  include_tokens?: boolean;
  include_text?: boolean;
  include_wrongness?: boolean;
}

export interface Sample {
  text: string;
  tokens: number[];
  judge_score: number | null;
  self_confidence: number | null;
  critic: { mean: number; p10: number; p50: number; p90: number } | null;
  steps?: number;
}

export interface QueuedEvent {
  event: 'queued';
  position: number;
}
export interface StartEvent {
  event: 'start';
  seed: number;
  model: string;
  backend: string;
  options: Record<string, unknown>;
}
export interface IterationEvent {
  event: 'iteration';
  iteration: number;
  iterations: number;
  masked: number;
  remasked: number[][];
  tokens?: number[][];
  text?: string[];
  wrongness?: number[][];
  early_stop?: boolean;
}
export interface DoneEvent {
  event: 'done';
  samples: Sample[];
  timings: { forward: number; sampling: number; remasking: number; metrics: number };
  seconds: number;
  tokens_per_second: number;
  iterations_run: number;
  backend: string;
  seed: number;
  model: string;
  judge: string;
  strategy: string;
  metric: string;
  seed_start: number;
  warnings: string[];
}
export type GenerateEvent = QueuedEvent | StartEvent | IterationEvent | DoneEvent;

export interface ErrorOptions {
  code?: string;
  status?: number;
  field?: string;
  details?: Record<string, unknown>;
  cause?: unknown;
}

/** The base of the package's errors; code is the API's error code (docs/api.md) or the package's own. */
export class RemaskError extends Error {
  constructor(message: string, options?: ErrorOptions);
  code: string;
  status?: number;
  field?: string;
  details?: Record<string, unknown>;
}
/** backend 'webgpu' was asked for and there is no usable WebGPU (code 'no_webgpu'). */
export class NoWebGPUError extends RemaskError {}
/** The adapter's limits are below the engine's needs (code 'adapter_too_small'; the message names the limit). */
export class AdapterTooSmallError extends RemaskError {}
/** Not a remask model (code 'invalid_model'), or not the expected sha256 (code 'sha256_mismatch'). */
export class ModelInvalidError extends RemaskError {}
/** No such file, URL or library id (code 'source_not_found' or 'unknown_model'). */
export class ModelNotFoundError extends RemaskError {}
/** A wrong option; field names it. */
export class InvalidOptionError extends RemaskError {}
/** The engine's worker failed, or the engine was closed (code 'engine_failed'). */
export class EngineError extends RemaskError {}

/** The typed error of one of the API's JSON errors ({code, message, field, ...}). */
export function errorFromAPI(error: { code?: string; message?: string; field?: string; [key: string]: unknown }, status?: number): RemaskError;

export class Remask {
  static create(options?: CreateOptions): Promise<Remask>;
  private constructor(onNotice?: (notice: Notice) => void);
  readonly info: EngineInfo;
  /** The engine's start: the wasm compile and the whole start, in ms. */
  readonly startup: { compileMs: number; startMs: number };
  loadModel(source: string | URL | Uint8Array | ArrayBuffer | Blob, options?: LoadOptions): Promise<ModelListing>;
  generate(options?: GenerateOptions, init?: { signal?: AbortSignal }): AsyncGenerator<GenerateEvent, void, undefined>;
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  on(listener: (notice: Notice) => void): () => void;
  clearCache(): Promise<boolean>;
  close(): void;
}

export default Remask;
