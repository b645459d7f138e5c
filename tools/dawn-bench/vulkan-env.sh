# vulkan-env.sh DEB_DIR: sourced by h200.sh and sweep.sh on a GPU machine
# without network. Installs the Vulkan loader from the .debs in DEB_DIR when
# the machine has none, and points VK_DRIVER_FILES at the NVIDIA driver's ICD
# file (containers often lack its registration) unless it is set already.
vulkan_env() {
	if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
		ls "$1"/*.deb >/dev/null 2>&1 || { echo "== no Vulkan loader here and no .deb in $1 (tools/fetch-gl-debs.sh or pack.sh)"; return 2; }
		for f in "$1"/*.deb; do dpkg -x "$f" /; done
		ldconfig
		echo "== installed the Vulkan loader from $1"
	fi
	if [ -z "${VK_DRIVER_FILES:-}" ]; then
		local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
		[ -e "$icd" ] || icd=$(find /usr /etc /usr/local/nvidia -name 'nvidia_icd*.json' 2>/dev/null | head -n 1)
		if [ -n "$icd" ]; then export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd; fi
	fi
	echo "== VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
}
