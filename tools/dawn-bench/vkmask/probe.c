// probe: prints the vendor ID that vkGetPhysicalDeviceProperties and
// vkGetPhysicalDeviceProperties2 report for each physical device, so that
// test.sh checks both of vkmask's rewrites (Dawn reads the first). Built by
// test.sh; links the Vulkan loader (libvulkan.so.1) at run time with dlopen.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void *Handle;
typedef void (*Fn)(void);
typedef Fn (*GIPA)(Handle, const char *);
typedef struct {
	int32_t sType;
	const void *pNext;
	const char *pApplicationName;
	uint32_t applicationVersion;
	const char *pEngineName;
	uint32_t engineVersion;
	uint32_t apiVersion;
} AppInfo;
typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	const AppInfo *pApplicationInfo;
	uint32_t enabledLayerCount;
	const char *const *ppEnabledLayerNames;
	uint32_t enabledExtensionCount;
	const char *const *ppEnabledExtensionNames;
} InstanceInfo;

int main(void) {
	void *lib = dlopen("libvulkan.so.1", RTLD_NOW);
	if (!lib) { fprintf(stderr, "probe: %s\n", dlerror()); return 1; }
	GIPA gipa = (GIPA)dlsym(lib, "vkGetInstanceProcAddr");
	AppInfo app = {0, NULL, "vkmask-probe", 1, NULL, 0, (1u << 22) | (1u << 12)}; // Vulkan 1.1
	InstanceInfo ci = {1, NULL, 0, &app, 0, NULL, 0, NULL};
	Handle inst = NULL;
	int32_t (*create)(const InstanceInfo *, const void *, Handle *) = (void *)gipa(NULL, "vkCreateInstance");
	if (!create || create(&ci, NULL, &inst) != 0) { fprintf(stderr, "probe: vkCreateInstance failed\n"); return 1; }
	int32_t (*enumerate)(Handle, uint32_t *, Handle *) = (void *)gipa(inst, "vkEnumeratePhysicalDevices");
	void (*props)(Handle, void *) = (void *)gipa(inst, "vkGetPhysicalDeviceProperties");
	void (*props2)(Handle, void *) = (void *)gipa(inst, "vkGetPhysicalDeviceProperties2");
	Handle pds[16];
	uint32_t n = 16;
	if (!enumerate || !props || !props2 || enumerate(inst, &n, pds) < 0) { fprintf(stderr, "probe: no physical devices\n"); return 1; }
	for (uint32_t i = 0; i < n; i++) {
		_Alignas(8) unsigned char p1[2048], p2[2048];
		memset(p1, 0, sizeof p1);
		memset(p2, 0, sizeof p2);
		int32_t st = 1000059001; // VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
		memcpy(p2, &st, 4);
		props(pds[i], p1);
		props2(pds[i], p2);
		uint32_t v1, v2;
		memcpy(&v1, p1 + 8, 4);      // VkPhysicalDeviceProperties.vendorID
		memcpy(&v2, p2 + 16 + 8, 4); // VkPhysicalDeviceProperties2.properties.vendorID
		printf("0x%x 0x%x %s\n", v1, v2, (const char *)(p1 + 20)); // deviceName follows deviceType
	}
	void (*destroy)(Handle, const void *) = (void *)gipa(inst, "vkDestroyInstance");
	if (destroy) destroy(inst, NULL);
	return 0;
}
