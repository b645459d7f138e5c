#!/usr/bin/env bash
# build.sh: set up, build, run and test remask. `./build.sh help` lists the commands.
set -euo pipefail

cd "$(dirname "$0")"

GO_MIN_MAJOR=1
GO_MIN_MINOR=26
PYTHON=/usr/bin/python3 # Debian's python3, where python3-torch installs

# Go lives in /usr/local/go on our machines; use it even when it is not on PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'build.sh: %s\n' "$*" >&2
	exit 1
}

# as_root runs a command as root: directly when we are root, else through sudo
# when it exists.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run '$*' and sudo is not installed; run it as root"
	fi
}

have_torch() {
	[ -x "$PYTHON" ] && "$PYTHON" -c 'import torch, numpy' >/dev/null 2>&1
}

# have_lavapipe: the Vulkan loader and Mesa's lavapipe ICD are installed.
have_lavapipe() {
	ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'
}

check_go() {
	command -v go >/dev/null 2>&1 ||
		die "Go ${GO_MIN_MAJOR}.${GO_MIN_MINOR} or newer is required and 'go' is not on PATH (nor in /usr/local/go/bin); install it into /usr/local/go and run ./build.sh setup again"
	local v major minor
	v="$(go env GOVERSION)" # go1.26.8
	v="${v#go}"
	major="${v%%.*}"
	minor="${v#*.}"
	minor="${minor%%.*}"
	minor="${minor%%[!0-9]*}"
	if [ "$major" -lt "$GO_MIN_MAJOR" ] || { [ "$major" -eq "$GO_MIN_MAJOR" ] && [ "${minor:-0}" -lt "$GO_MIN_MINOR" ]; }; then
		die "Go ${GO_MIN_MAJOR}.${GO_MIN_MINOR} or newer is required, found go${v} at $(command -v go); install a newer Go into /usr/local/go"
	fi
}

# Pinned tool versions. staticcheck comes from the Go module proxy (go
# install); naga-cli from crates.io (cargo install) where cargo and the
# network allow. Tint (Chrome's WGSL compiler) is in no package registry: it
# is built from Dawn (https://dawn.googlesource.com/dawn, CMake target
# tint_cmd / tint) and must come with the machine image, as naga does where
# crates.io cannot be reached (our machines have both in /usr/local/bin).
STATICCHECK_VERSION=v0.8.2
NAGA_VERSION=30.0.1

# gobin is where go install puts binaries.
gobin() {
	local d
	d="$(go env GOBIN)"
	[ -n "$d" ] || d="$(go env GOPATH)/bin"
	printf '%s\n' "$d"
}

# ensure_staticcheck installs the pinned staticcheck through the Go module
# proxy unless that version is already in $(gobin).
ensure_staticcheck() {
	local bin
	bin="$(gobin)/staticcheck"
	if [ -x "$bin" ] && "$bin" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
		return 0
	fi
	log "go install honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
}

# ensure_validators makes sure the shader validators are on PATH in CI
# (shaders' TestNaga and TestTint fail there without them; elsewhere they
# skip, saying so).
ensure_validators() {
	[ "${CI:-}" = "true" ] || return 0
	if ! command -v naga >/dev/null 2>&1; then
		command -v cargo >/dev/null 2>&1 ||
			die "CI needs the naga CLI (shaders' TestNaga): install Rust's cargo and run 'cargo install --locked naga-cli --version $NAGA_VERSION', or put a naga binary on PATH"
		log "CI: cargo install --locked naga-cli --version $NAGA_VERSION (shaders' TestNaga)"
		cargo install --locked naga-cli --version "$NAGA_VERSION" ||
			die "cargo could not install naga-cli $NAGA_VERSION (crates.io unreachable?); put a naga binary on PATH (the machine image carries one in /usr/local/bin)"
		PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
	fi
	command -v tint >/dev/null 2>&1 ||
		die "CI needs Tint's CLI 'tint' on PATH (shaders' TestTint): no registry ships it; build it from Dawn (https://dawn.googlesource.com/dawn) or use a machine image that carries it"
}

cmd_setup() {
	check_go
	log "Go: $(go version)"
	log "go mod download"
	go mod download
	ensure_staticcheck
	ensure_validators
	# CI runs the WebGPU tests on Mesa's lavapipe (a Vulkan driver on the CPU):
	# engine/gpu's tests fail, not skip, in CI when no adapter is found.
	if [ "${CI:-}" = "true" ] && ! have_lavapipe; then
		log "CI: installing mesa-vulkan-drivers and libvulkan1 (lavapipe, for the WebGPU tests)"
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1
	fi
	# The API tests run a real HTTP client.
	if [ "${CI:-}" = "true" ] && ! command -v curl >/dev/null 2>&1; then
		log "CI: installing curl (the API tests run it against remask serve)"
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl
	fi
	# The native WebGPU backend links wgpu-native through cgo.
	if ! command -v "$(go env CC)" >/dev/null 2>&1; then
		if [ "${CI:-}" = "true" ]; then
			log "CI: installing gcc (cgo, for the WebGPU backend)"
			as_root apt-get update -qq
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev
		else
			die "a C compiler ($(go env CC)) is needed to build remask (cgo links wgpu-native); install it: apt-get install gcc"
		fi
	fi
	# CI runs the PyTorch tests of tools/train too: install Debian's torch there.
	if [ "${CI:-}" = "true" ] && ! have_torch; then
		log "CI: installing python3-torch and python3-numpy"
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy
	fi
}

SITE_DIST=site/dist

cmd_build() {
	check_go
	log "go build -o bin/remask ./tools/remask"
	go build -o bin/remask ./tools/remask
	build_package
	build_site
}

PKG_SRC=wasm/js
PKG_DIST=wasm/js/dist
PKG_DIR=$PKG_DIST/package

# build_package stages the npm package (wasm/js: docs/js.md) in
# $PKG_DIR: its JavaScript, the wasm engine, and Go's wasm glue with Go's
# license (wasm_exec.js is Go's, under Go's BSD license).
build_package() {
	log "package: GOOS=js GOARCH=wasm go build -o $PKG_DIR/remask.wasm ./wasm"
	rm -rf "$PKG_DIST"
	mkdir -p "$PKG_DIR"
	GOOS=js GOARCH=wasm go build -trimpath -ldflags='-s -w' -o "$PKG_DIR/remask.wasm" ./wasm
	# Go 1.24 moved the glue from misc/wasm to lib/wasm.
	cp "$(go env GOROOT)/lib/wasm/wasm_exec.js" "$PKG_DIR/"
	cp "$(go env GOROOT)/LICENSE" "$PKG_DIR/LICENSE-go"
	cp LICENSE "$PKG_DIR/LICENSE"
	cp "$PKG_SRC"/package.json "$PKG_SRC"/index.js "$PKG_SRC"/index.d.ts "$PKG_SRC"/engine-worker.js "$PKG_SRC"/README.md "$PKG_DIR/"
}

# cmd_package builds the package and packs it with npm pack into
# $PKG_DIST/remask-VERSION.tgz.
cmd_package() {
	check_go
	command -v npm >/dev/null 2>&1 || die "npm is needed to pack the package (apt-get install nodejs npm)"
	build_package
	log "npm pack $PKG_DIR"
	local tgz
	tgz="$(cd "$PKG_DIST" && npm pack ./package --pack-destination . --loglevel=error | tail -n 1)"
	log "package: $PKG_DIST/$tgz ($(wc -c <"$PKG_DIST/$tgz") bytes)"
}

# build_site builds the demo site into site/dist: the wasm engine (and its
# gzip, which remask serve sends to browsers that accept it), Go's wasm glue,
# the static files, the shipped models and manifest.json (their sha256).
build_site() {
	log "site: $SITE_DIST, the engine from the package ($PKG_DIR -> $SITE_DIST/remask/)"
	rm -rf "$SITE_DIST"
	mkdir -p "$SITE_DIST/models"
	cp -r "$PKG_DIR" "$SITE_DIST/remask"
	gzip -9 -n -k -f "$SITE_DIST/remask/remask.wasm"
	cp site/index.html site/style.css site/*.js "$SITE_DIST/"
	local m
	for m in models/*.safetensors; do
		ln -f "$m" "$SITE_DIST/models/" 2>/dev/null || cp "$m" "$SITE_DIST/models/"
	done
	go run ./tools/sitemanifest -o "$SITE_DIST/manifest.json" -wasm "$SITE_DIST/remask/remask.wasm" "$SITE_DIST"/models/*.safetensors
	log "site: $SITE_DIST (remask.wasm $(wc -c <"$SITE_DIST/remask/remask.wasm") bytes, gzip $(wc -c <"$SITE_DIST/remask/remask.wasm.gz") bytes)"
}

WORKER_DIST=wasm/worker/dist

# cmd_worker builds the Cloudflare Worker bundle into wasm/worker/dist: the
# API engine (wasm/worker, GOOS=js GOARCH=wasm, CPU backend only), Go's wasm
# glue, the entry module and, as static assets, the model it serves
# (wrangler.toml and wasm/worker/workerd.capnp read this folder; docs/edge.md).
cmd_worker() {
	check_go
	log "worker: GOOS=js GOARCH=wasm go build -o $WORKER_DIST/remask-worker.wasm ./wasm/worker"
	rm -rf "$WORKER_DIST"
	mkdir -p "$WORKER_DIST/assets/models"
	GOOS=js GOARCH=wasm go build -trimpath -ldflags='-s -w' -o "$WORKER_DIST/remask-worker.wasm" ./wasm/worker
	cp "$(go env GOROOT)/lib/wasm/wasm_exec.js" "$WORKER_DIST/"
	cp wasm/worker/worker.mjs "$WORKER_DIST/"
	# Only the models of the Worker's library (wasm/worker/config.go).
	local m assets=()
	mapfile -t assets < <(go run ./wasm/worker assets)
	[ "${#assets[@]}" -gt 0 ] || die "go run ./wasm/worker assets listed no model"
	for m in "${assets[@]}"; do
		ln -f "models/$m" "$WORKER_DIST/assets/models/" 2>/dev/null || cp "models/$m" "$WORKER_DIST/assets/models/"
	done
	local raw gz
	raw="$(cat "$WORKER_DIST/worker.mjs" "$WORKER_DIST/wasm_exec.js" "$WORKER_DIST/remask-worker.wasm" | wc -c)"
	gz="$(cat "$WORKER_DIST/worker.mjs" "$WORKER_DIST/wasm_exec.js" "$WORKER_DIST/remask-worker.wasm" | gzip -9 -n | wc -c)"
	log "worker: $WORKER_DIST (script bundle $raw bytes, gzip $gz bytes; assets: ${assets[*]}, $(cat "$WORKER_DIST"/assets/models/* | wc -c) bytes)"
}

# worker_test runs tools/worker-test: the Worker bundle (./build.sh worker)
# under workerd, Cloudflare's open-source runtime, against the native CPU
# backend's text. In CI it installs what it needs and must run; elsewhere it
# is skipped, saying so, when Node is missing.
worker_test() {
	if [ "${CI:-}" = "true" ]; then
		local pkgs=()
		command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
		command -v npm >/dev/null 2>&1 || pkgs+=(npm)
		if [ "${#pkgs[@]}" -gt 0 ]; then
			log "CI: installing ${pkgs[*]} (for the Worker tests)"
			as_root apt-get update -qq
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
		fi
	elif ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		log "NOTE: the Worker tests (workerd) were NOT run: they need node and npm"
		log "      (apt-get install nodejs npm; CI=true ./build.sh test installs them and runs them)"
		return 0
	fi
	if [ ! -x tools/worker-test/node_modules/.bin/workerd ] || [ "${CI:-}" = "true" ]; then
		log "npm ci (tools/worker-test: workerd)"
		(cd tools/worker-test && npm ci --no-audit --no-fund --loglevel=error)
	fi
	cmd_worker
	log "go build -o bin/remask ./tools/remask (the Worker's text is checked against its CPU backend)"
	go build -o bin/remask ./tools/remask
	log "worker tests: node tools/worker-test/test.mjs"
	node tools/worker-test/test.mjs
}

# package_test runs tools/package-test: the npm package packed (./build.sh
# package), installed into an empty project with npm (the registry's webgpu
# and typescript too), run in Node on the CPU engine and on Dawn (SwiftShader)
# and in Chromium through examples/embed.html, each text against the native
# CPU backend's. In CI it must run; elsewhere it is skipped, saying so, when
# Node or npm is missing. Runs after browser_test (its Chromium, its
# playwright-core and bin/remask).
package_test() {
	if [ "${CI:-}" != "true" ] && { ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; }; then
		log "NOTE: the npm package tests were NOT run: they need node and npm"
		log "      (apt-get install nodejs npm; CI=true ./build.sh test installs them and runs them)"
		return 0
	fi
	if [ ! -d tools/browser-test/node_modules/playwright-core ]; then
		log "npm ci (tools/browser-test: playwright-core, for the example page's test)"
		(cd tools/browser-test && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
	fi
	cmd_package
	[ -x bin/remask ] || go build -o bin/remask ./tools/remask
	log "package tests: node tools/package-test/test.mjs"
	node tools/package-test/test.mjs
}

# dawn_go_test runs engine/gpu's tests of the subgroup reductions, the goldens,
# the default-limits pipelines, the loop's kernels that judge non-finite
# values (select, remask, stats, the draws) and the fused sampler-head wave
# (its subgroup variant against the CPU backend; WGSL may assume no NaN, so
# these checks must hold on Tint as well as naga), the browser build's choice of wave
# dispatch (TestWaveModeAuto), the batched recording of dispatches
# (TestBatchedDispatches) and the device metrics' damaged-critic check
# (TestDeviceLoopNaNCritic), compiled to js/wasm under Node with Dawn
# (webgpu at the package's peer version) on Chromium's SwiftShader ICD (tools/dawn-go-test): the
# browsers' WebGPU path, where the subgroup variants run (wgpu-native v22 has
# none). REMASK_WANT_SUBGROUPS=1 makes TestSubgroupReductions fail when the
# subgroup path did not run. Then the vkmask layer's test (tools/dawn-bench/vkmask).
# Required in CI; elsewhere skipped, saying so,
# without node/npm or Chromium's ICD.
dawn_go_test() {
	local icd=/usr/lib/chromium/vk_swiftshader_icd.json
	if [ "${CI:-}" != "true" ] && { ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1 || [ ! -e "$icd" ]; }; then
		log "NOTE: the Dawn (js/wasm) GPU tests were NOT run: they need node, npm and $icd (Debian's chromium)"
		return 0
	fi
	[ -e "$icd" ] || die "CI: the Dawn GPU tests need Chromium's SwiftShader Vulkan ICD at $icd (apt-get install chromium)"
	# The version: the package's peer dependency (wasm/js/package.json), as tools/package-test reads it.
	local wg have
	wg=$(node -p "require('./wasm/js/package.json').peerDependencies.webgpu.replace(/^[~^]/, '')")
	have=$(node -p "try { require('./tools/dawn-go-test/node_modules/webgpu/package.json').version } catch (e) { '' }")
	if [ "$have" != "$wg" ]; then
		log "npm install webgpu@$wg (tools/dawn-go-test: Dawn for Node)"
		npm install --prefix tools/dawn-go-test --no-save --no-audit --no-fund --loglevel=error "webgpu@$wg"
	fi
	log "Dawn GPU tests: engine/gpu in js/wasm under Node + Dawn on SwiftShader (tools/dawn-go-test)"
	REMASK_WANT_SUBGROUPS=1 VK_ICD_FILENAMES="$icd" WEBGPU_MODULE="$PWD/tools/dawn-go-test/node_modules/webgpu" \
		tools/dawn-go-test/run.sh -test.run 'TestSubgroupReductions|TestGolden$|TestPipelinesDefaultLimits|TestLoopKernels$/(select|remask|stats|sample)|TestWaveModeAuto|TestBatchedDispatches|TestDeviceLoopNaNCritic'
	log "vkmask: the measurement layer that lets Dawn offer shader-f16 on NVIDIA (tools/dawn-bench/vkmask/test.sh)"
	VK_ICD_FILENAMES="$icd" WEBGPU_MODULE="$PWD/tools/dawn-go-test/node_modules/webgpu" tools/dawn-bench/vkmask/test.sh
}

cmd_serve() {
	cmd_build
	local addr="${ADDR:-127.0.0.1:8080}"
	log "bin/remask serve --site $SITE_DIST --addr $addr (open http://$addr/)"
	exec bin/remask serve --site "$SITE_DIST" --addr "$addr"
}

# browser_test runs tools/browser-test (Playwright driving Debian's Chromium
# with SwiftShader WebGPU) against the built site. In CI it installs what it
# needs and must run; elsewhere it is skipped, saying so, when Chromium or
# Node is missing.
browser_test() {
	if [ "${CI:-}" = "true" ]; then
		# Only what is missing: these machines carry NodeSource's nodejs, which
		# bundles npm and conflicts with Debian's npm package.
		local pkgs=()
		[ -x /usr/bin/chromium ] || pkgs+=(chromium)
		command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
		command -v npm >/dev/null 2>&1 || pkgs+=(npm)
		if [ "${#pkgs[@]}" -gt 0 ]; then
			log "CI: installing ${pkgs[*]} (for the browser tests)"
			as_root apt-get update -qq
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
		fi
	elif [ ! -x /usr/bin/chromium ] || ! command -v node >/dev/null 2>&1; then
		log "NOTE: the browser tests were NOT run: they need /usr/bin/chromium and node"
		log "      (apt-get install chromium nodejs npm; CI=true ./build.sh test installs them and runs them)"
		return 0
	fi
	if [ ! -d tools/browser-test/node_modules/playwright-core ] || [ "${CI:-}" = "true" ]; then
		log "npm ci (tools/browser-test: playwright-core, no browser download)"
		(cd tools/browser-test && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
	fi
	cmd_build
	log "browser tests: node tools/browser-test/test.mjs (screenshots in site/test-results/)"
	node tools/browser-test/test.mjs
}

# RUN_DEFAULTS: the size ./build.sh run uses, about a minute on a 2-core CPU
# (remask sample's own defaults, 16 x 1024, take hours there). Each one is
# added unless the user's flags set it: user flags win, and the rest of the
# small size stays.
RUN_DEFAULTS=(--num-samples 2 --sequence-length 384 --iterations 15)

# user_sets FLAG ARGS...: whether ARGS set --FLAG (as --FLAG V or --FLAG=V).
user_sets() {
	local flag="$1" a
	shift
	for a in "$@"; do
		case "$a" in
		"--$flag" | "--$flag="* | "-$flag" | "-$flag="*) return 0 ;;
		esac
	done
	return 1
}

cmd_run() {
	cmd_build
	local extra=() i flag
	for ((i = 0; i < ${#RUN_DEFAULTS[@]}; i += 2)); do
		flag="${RUN_DEFAULTS[i]#--}"
		user_sets "$flag" "$@" && continue
		# A template sets the length; a custom schedule sets the iterations.
		[ "$flag" = sequence-length ] && user_sets template "$@" && continue
		[ "$flag" = iterations ] && user_sets masking-ratios "$@" && continue
		extra+=("${RUN_DEFAULTS[i]}" "${RUN_DEFAULTS[i + 1]}")
	done
	# The small model and its remasking model (models/README.md): about 4x
	# the characters per CPU-second of the flagship, for a first run on a
	# laptop CPU; --model picks another (models/shakespeare.safetensors is the
	# flagship).
	if ! user_sets model "$@"; then
		extra+=(--model models/shakespeare-small.safetensors)
		if ! user_sets remasking "$@" && ! user_sets remasking-model "$@" && ! user_sets method "$@"; then
			extra+=(--remasking-model models/shakespeare-remasker.safetensors)
		fi
	fi
	log "bin/remask sample ${extra[*]} $* (the small defaults apply unless your flags set them)"
	exec bin/remask sample "${extra[@]}" "$@"
}

cmd_test() {
	cmd_setup

	log "gofmt -l"
	local unformatted
	unformatted="$(gofmt -l .)"
	if [ -n "$unformatted" ]; then
		printf '%s\n' "$unformatted" >&2
		die "the files above are not gofmt-formatted; run: gofmt -w <file>"
	fi

	log "go vet ./... (native and GOOS=js GOARCH=wasm)"
	go vet ./...
	GOOS=js GOARCH=wasm go vet ./...

	log "staticcheck $STATICCHECK_VERSION ./... (native and GOOS=js GOARCH=wasm)"
	"$(gobin)/staticcheck" ./...
	GOOS=js GOARCH=wasm "$(gobin)/staticcheck" ./...

	log "go test -count=1 ./..."
	go test -count=1 ./...

	# The race detector on the packages where it is affordable (about a
	# minute for all of them on two cores). Left out: engine/gpu (130 s under
	# -race against 45 s without; its device work is cgo, which the detector
	# does not see) and tools/remask (over 10 minutes: the shipped-model tests
	# run the CPU forward some 20 times slower; it timed out with no race
	# reported). The concurrency they use lives in the packages that run:
	# api's queue and streams, the sampler, engine/cpu's workers.
	local race_pkgs
	race_pkgs="$(go list ./... | grep -v -e '/engine/gpu$' -e '/tools/remask$')"
	log "go test -race -count=1 (all packages but engine/gpu and tools/remask)"
	# shellcheck disable=SC2086 # one package per word
	go test -race -count=1 $race_pkgs

	log "GOOS=js GOARCH=wasm go build ./..."
	GOOS=js GOARCH=wasm go build ./...

	fuzz_all 10

	if have_torch; then
		log "$PYTHON -m unittest discover -s tools/train"
		"$PYTHON" -m unittest discover -s tools/train
	else
		log "NOTE: the PyTorch tests of tools/train were NOT run: $PYTHON cannot import torch and numpy"
		log "      (install python3-torch and python3-numpy to run them; the Go tests do not need them, the goldens are committed)"
	fi
	browser_test
	package_test
	dawn_go_test
	worker_test

	log "all tests passed"
}

cmd_goldens() {
	have_torch || die "the goldens are made with PyTorch: install python3-torch and python3-numpy (apt-get install python3-torch python3-numpy), then run ./build.sh goldens again"
	log "$PYTHON tools/train/make_fixtures.py"
	"$PYTHON" tools/train/make_fixtures.py
}

cmd_fuzz() {
	local seconds="${1:-60}"
	case "$seconds" in
	'' | *[!0-9]*) die "fuzz takes a whole number of seconds, e.g. ./build.sh fuzz 300 (got '$seconds')" ;;
	esac
	[ "$seconds" -ge 1 ] || die "fuzz needs at least 1 second (got $seconds)"
	check_go
	fuzz_all "$seconds"
}

# fuzz_targets prints "PACKAGE_DIR FuzzName" for every fuzz target of the
# repository (every func Fuzz... in a _test.go file), so new targets run
# without editing this script.
fuzz_targets() {
	grep -rEo --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.git --exclude-dir=dist \
		'^func Fuzz[A-Za-z0-9_]*\(' . |
		sed -E 's#^(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)\($#\1 \2#' | sort -u
}

# fuzz_all runs every fuzz target for the given seconds each. Minimizing a
# new interesting input is capped at 100 runs (-fuzzminimizetime 100x): with
# the default (60 s per input) a 10 s run spends nearly all of it
# minimizing (FuzzParse: 16 inputs executed in 10 s; capped: over 100,000).
fuzz_all() {
	local seconds="$1" dir name out last n=0
	out="$(mktemp)"
	while read -r dir name; do
		n=$((n + 1))
		log "fuzz: $name in $dir for ${seconds}s"
		if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "${seconds}s" -fuzzminimizetime 100x "$dir" 2>&1 | tee "$out" >&2; then
			rm -f "$out"
			die "fuzz target $name failed; the failing input is saved under $dir/testdata/fuzz/$name/"
		fi
		last="$(grep -E '^fuzz: elapsed' "$out" | tail -n 1 || true)"
		log "fuzz: $name: ${last#fuzz: }"
	done < <(fuzz_targets)
	rm -f "$out"
	[ "$n" -gt 0 ] || die "no fuzz targets found (func Fuzz... in a _test.go file)"
}

cmd_help() {
	cat <<'EOF'
Usage: ./build.sh <command> [arguments]

Commands:
  setup          check Go >= 1.26 and download the Go modules (in CI also install python3-torch
                 and mesa-vulkan-drivers + libvulkan1 for the WebGPU tests on lavapipe)
  build          build bin/remask and the demo site (site/dist: wasm engine, static files, models, manifest)
  serve          build, then serve the site and the API: bin/remask serve on $ADDR (default 127.0.0.1:8080)
  run [flags]    build, then generate text: bin/remask sample [flags] (see docs/cli.md), at a
                 CPU-friendly size (2 samples x 384 characters, 15 iterations) unless the flags set it
  test           setup, then gofmt, go vet and staticcheck (native and js/wasm), go test, go test -race
                 (all packages but engine/gpu and tools/remask), the js/wasm build, 10s of every fuzz target,
                 the PyTorch tests of tools/train (when python3-torch is installed) and the browser
                 tests (Chromium + SwiftShader WebGPU; with CI=true they are installed and required)
                 the npm package tests (tools/package-test: npm install of the packed tarball, Node on the CPU
                 and on Dawn/SwiftShader, examples/embed.html in Chromium; with CI=true required), engine/gpu's
                 subgroup, golden and default-limits tests in js/wasm under Node + Dawn (tools/dawn-go-test)
                 and the Cloudflare Worker tests (workerd; with CI=true required)
  package        build the npm package (wasm/js, docs/js.md) and npm pack it into wasm/js/dist
  worker         build the Cloudflare Worker bundle (wasm/worker/dist; wrangler.toml, docs/edge.md)
  goldens        regenerate testdata/golden with PyTorch (tools/train/make_fixtures.py)
  fuzz [seconds] run every fuzz target (func Fuzz... in the repository) for longer (default 60 seconds each)
  help           this list
EOF
}

main() {
	local cmd="${1:-help}"
	[ $# -gt 0 ] && shift
	case "$cmd" in
	setup) cmd_setup "$@" ;;
	build) cmd_build "$@" ;;
	serve) cmd_serve "$@" ;;
	run) cmd_run "$@" ;;
	test) cmd_test "$@" ;;
	worker) cmd_worker "$@" ;;
	package) cmd_package "$@" ;;
	goldens) cmd_goldens "$@" ;;
	fuzz) cmd_fuzz "$@" ;;
	help | -h | --help) cmd_help ;;
	*)
		cmd_help >&2
		die "unknown command '$cmd'"
		;;
	esac
}

main "$@"
