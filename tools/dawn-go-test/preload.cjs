// Gives a Go js/wasm test binary run by Node a navigator.gpu: Dawn, from the
// npm package `webgpu` (dawn.node). run.sh loads this with node --require.
// WEBGPU_MODULE names the package's folder when it is not resolvable from
// here (e.g. /tmp/x/node_modules/webgpu).
const { create, globals } = require(process.env.WEBGPU_MODULE || 'webgpu');
Object.assign(globalThis, globals);
globalThis.navigator = { gpu: create([]) };
