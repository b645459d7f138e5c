// adapter.mjs: what Dawn (the webgpu package) offers on this machine: the
// adapter's info, features and the limits the engine cares about. One JSON
// line ({"side":"dawn-adapter",...}). Run by h200.sh next to node_modules/webgpu.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const gpu = create([]);
const out = (o) => console.log(JSON.stringify({ side: 'dawn-adapter', ...o }));
try {
  const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!a) throw new Error('requestAdapter returned null');
  const i = a.info || {};
  const lim = {};
  for (const k of ['maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupSizeX', 'maxStorageBuffersPerShaderStage']) lim[k] = a.limits[k];
  out({ vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, subgroupMinSize: i.subgroupMinSize, subgroupMaxSize: i.subgroupMaxSize, features: [...a.features].sort(), limits: lim });
  process.exit(0);
} catch (err) {
  out({ error: String(err && err.message || err) });
  process.exit(1);
}
