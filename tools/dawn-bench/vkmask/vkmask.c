// vkmask: a Vulkan layer that reports another PCI vendor ID for the GPU, for
// measurements only (tools/dawn-bench, docs/gpu.md "Precision").
//
// Why: Dawn (Chrome's WebGPU, the npm package `webgpu` that the browser tests
// and tools/dawn-bench run) enables the feature shader-f16 on Vulkan only when
// the vendor is not NVIDIA (a TODO in its Vulkan backend citing
// crbug.com/tint/2164), although NVIDIA's driver has every capability it
// checks (shaderFloat16, 16-bit storage). With this layer in front of the
// driver Dawn sees another vendor, offers shader-f16, and remask's f16 kernels
// can be timed and tested on an NVIDIA GPU. It changes nothing else: every
// call but the two property queries goes straight to the next layer or the
// driver, and those two only have vendorID rewritten.
//
// Environment:
//   VKMASK_VENDOR_ID  the vendor ID to report (strtoul base 0: 0x..., decimal);
//                     default 0xfffe, an ID no vendor has, so that Dawn applies
//                     no vendor-specific path at all.
//   VKMASK_ONLY       if set, only a GPU whose real vendor ID is this one is
//                     masked (e.g. 0x10de: NVIDIA); others pass unchanged.
//   VKMASK_VERBOSE    if set, each rewrite is written to stderr once.
//
// Enable it with VK_LAYER_PATH=<folder of vkmask.json> and
// VK_INSTANCE_LAYERS=VK_LAYER_REMASK_vkmask (tools/dawn-bench/vkmask/build.sh
// writes both files). Not a product feature: nothing in remask loads it.
//
// The Vulkan headers are not needed: the few types below are the ABI of
// Vulkan 1.x and of the loader's layer interface (vk_layer.h), declared here
// so that the layer builds anywhere with a C compiler.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#define EXPORT __attribute__((visibility("default")))

typedef int32_t VkResult;
typedef int32_t VkStructureType;
typedef struct VkInstance_T *VkInstance;
typedef struct VkPhysicalDevice_T *VkPhysicalDevice;
typedef struct VkDevice_T *VkDevice;
typedef void (*PFN_vkVoidFunction)(void);
typedef PFN_vkVoidFunction (*PFN_vkGetInstanceProcAddr)(VkInstance, const char *);
typedef PFN_vkVoidFunction (*PFN_vkGetDeviceProcAddr)(VkDevice, const char *);
typedef PFN_vkVoidFunction (*PFN_GetPhysicalDeviceProcAddr)(VkInstance, const char *);

enum {
	VK_SUCCESS = 0,
	VK_ERROR_INITIALIZATION_FAILED = -3,
	VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO = 47,
	VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO = 48,
	VK_LAYER_LINK_INFO = 0,
	LAYER_NEGOTIATE_INTERFACE_STRUCT = 1,
};

// Every Vulkan structure starts with these two fields.
typedef struct {
	VkStructureType sType;
	const void *pNext;
} Chain;

// VkPhysicalDeviceProperties begins apiVersion, driverVersion, vendorID.
typedef struct {
	uint32_t apiVersion, driverVersion, vendorID, deviceID;
} PropsHead;

// VkPhysicalDeviceProperties2: sType, pNext, then the properties.
typedef struct {
	VkStructureType sType;
	void *pNext;
	PropsHead properties;
} Props2Head;

typedef struct LayerInstanceLink {
	struct LayerInstanceLink *pNext;
	PFN_vkGetInstanceProcAddr pfnNextGetInstanceProcAddr;
	PFN_GetPhysicalDeviceProcAddr pfnNextGetPhysicalDeviceProcAddr;
} LayerInstanceLink;

typedef struct {
	VkStructureType sType;
	const void *pNext;
	int32_t function;
	union {
		LayerInstanceLink *pLayerInfo;
		void *other[2];
	} u;
} LayerInstanceCreateInfo;

typedef struct LayerDeviceLink {
	struct LayerDeviceLink *pNext;
	PFN_vkGetInstanceProcAddr pfnNextGetInstanceProcAddr;
	PFN_vkGetDeviceProcAddr pfnNextGetDeviceProcAddr;
} LayerDeviceLink;

typedef struct {
	VkStructureType sType;
	const void *pNext;
	int32_t function;
	union {
		LayerDeviceLink *pLayerInfo;
		void *other[2];
	} u;
} LayerDeviceCreateInfo;

typedef struct {
	int32_t sType;
	void *pNext;
	uint32_t loaderLayerInterfaceVersion;
	PFN_vkGetInstanceProcAddr pfnGetInstanceProcAddr;
	PFN_vkGetDeviceProcAddr pfnGetDeviceProcAddr;
	PFN_GetPhysicalDeviceProcAddr pfnGetPhysicalDeviceProcAddr;
} NegotiateLayerInterface;

typedef VkResult (*PFN_CreateInstance)(const void *, const void *, VkInstance *);
typedef void (*PFN_DestroyInstance)(VkInstance, const void *);
typedef VkResult (*PFN_CreateDevice)(VkPhysicalDevice, const void *, const void *, VkDevice *);
typedef void (*PFN_DestroyDevice)(VkDevice, const void *);
typedef void (*PFN_GetProps)(VkPhysicalDevice, void *);

// The dispatch state. Instances and devices are few (a process of Dawn or
// remask makes one or two), so fixed tables under one lock suffice; a full
// table fails creation with VK_ERROR_INITIALIZATION_FAILED instead of
// misbehaving.
#define MAXN 64
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
	VkInstance inst;
	PFN_vkGetInstanceProcAddr gipa;
	PFN_GetProps props, props2, props2khr;
	PFN_DestroyInstance destroy;
} Inst;
static Inst insts[MAXN];

typedef struct {
	VkDevice dev;
	PFN_vkGetDeviceProcAddr gdpa;
	PFN_DestroyDevice destroy;
} Dev;
static Dev devs[MAXN];

// The physical devices' property functions do not say which instance they
// belong to, and the loader hands each layer its own physical device handles;
// the next layer's functions are the same for every instance of one process
// (the chain is built from the same manifest), so the latest instance's are
// used.
static Inst *latest;

static uint32_t masked_id(uint32_t real) {
	static int verbose_done;
	const char *only = getenv("VKMASK_ONLY");
	if (only && *only && (uint32_t)strtoul(only, NULL, 0) != real) return real;
	const char *v = getenv("VKMASK_VENDOR_ID");
	uint32_t id = (v && *v) ? (uint32_t)strtoul(v, NULL, 0) : 0xfffeu;
	if (getenv("VKMASK_VERBOSE") && !verbose_done) {
		verbose_done = 1;
		fprintf(stderr, "vkmask: vendor ID 0x%04x reported as 0x%04x\n", real, id);
	}
	return id;
}

static void GetPhysicalDeviceProperties(VkPhysicalDevice pd, void *props) {
	pthread_mutex_lock(&mu);
	PFN_GetProps next = latest ? latest->props : NULL;
	pthread_mutex_unlock(&mu);
	if (!next) return;
	next(pd, props);
	PropsHead *h = props;
	h->vendorID = masked_id(h->vendorID);
}

static void props2(VkPhysicalDevice pd, void *props, int khr) {
	pthread_mutex_lock(&mu);
	PFN_GetProps next = NULL;
	if (latest) next = khr && latest->props2khr ? latest->props2khr : latest->props2;
	pthread_mutex_unlock(&mu);
	if (!next) return;
	next(pd, props);
	Props2Head *h = props;
	h->properties.vendorID = masked_id(h->properties.vendorID);
}

static void GetPhysicalDeviceProperties2(VkPhysicalDevice pd, void *props) { props2(pd, props, 0); }
static void GetPhysicalDeviceProperties2KHR(VkPhysicalDevice pd, void *props) { props2(pd, props, 1); }

static Inst *find_inst(VkInstance inst) {
	for (int i = 0; i < MAXN; i++)
		if (insts[i].inst == inst && inst) return &insts[i];
	return NULL;
}

static VkResult CreateInstance(const void *info, const void *alloc, VkInstance *out) {
	LayerInstanceCreateInfo *li = (LayerInstanceCreateInfo *)((const Chain *)info)->pNext;
	while (li && !(li->sType == VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO && li->function == VK_LAYER_LINK_INFO))
		li = (LayerInstanceCreateInfo *)li->pNext;
	if (!li || !li->u.pLayerInfo) return VK_ERROR_INITIALIZATION_FAILED;
	PFN_vkGetInstanceProcAddr gipa = li->u.pLayerInfo->pfnNextGetInstanceProcAddr;
	li->u.pLayerInfo = li->u.pLayerInfo->pNext; // the next layer reads its own link
	PFN_CreateInstance create = (PFN_CreateInstance)gipa(NULL, "vkCreateInstance");
	if (!create) return VK_ERROR_INITIALIZATION_FAILED;
	VkResult r = create(info, alloc, out);
	if (r != VK_SUCCESS) return r;
	pthread_mutex_lock(&mu);
	Inst *slot = find_inst(NULL);
	for (int i = 0; !slot && i < MAXN; i++)
		if (!insts[i].inst) slot = &insts[i];
	if (slot) {
		slot->inst = *out;
		slot->gipa = gipa;
		slot->props = (PFN_GetProps)gipa(*out, "vkGetPhysicalDeviceProperties");
		slot->props2 = (PFN_GetProps)gipa(*out, "vkGetPhysicalDeviceProperties2");
		slot->props2khr = (PFN_GetProps)gipa(*out, "vkGetPhysicalDeviceProperties2KHR");
		slot->destroy = (PFN_DestroyInstance)gipa(*out, "vkDestroyInstance");
		latest = slot;
	}
	pthread_mutex_unlock(&mu);
	if (!slot) {
		PFN_DestroyInstance d = (PFN_DestroyInstance)gipa(*out, "vkDestroyInstance");
		if (d) d(*out, alloc);
		return VK_ERROR_INITIALIZATION_FAILED;
	}
	return VK_SUCCESS;
}

static void DestroyInstance(VkInstance inst, const void *alloc) {
	pthread_mutex_lock(&mu);
	Inst *s = find_inst(inst);
	PFN_DestroyInstance d = s ? s->destroy : NULL;
	if (s) {
		if (latest == s) latest = NULL;
		memset(s, 0, sizeof *s);
		for (int i = 0; !latest && i < MAXN; i++)
			if (insts[i].inst) latest = &insts[i];
	}
	pthread_mutex_unlock(&mu);
	if (d) d(inst, alloc);
}

static VkResult CreateDevice(VkPhysicalDevice pd, const void *info, const void *alloc, VkDevice *out) {
	LayerDeviceCreateInfo *li = (LayerDeviceCreateInfo *)((const Chain *)info)->pNext;
	while (li && !(li->sType == VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO && li->function == VK_LAYER_LINK_INFO))
		li = (LayerDeviceCreateInfo *)li->pNext;
	if (!li || !li->u.pLayerInfo) return VK_ERROR_INITIALIZATION_FAILED;
	PFN_vkGetInstanceProcAddr gipa = li->u.pLayerInfo->pfnNextGetInstanceProcAddr;
	PFN_vkGetDeviceProcAddr gdpa = li->u.pLayerInfo->pfnNextGetDeviceProcAddr;
	li->u.pLayerInfo = li->u.pLayerInfo->pNext;
	pthread_mutex_lock(&mu);
	VkInstance inst = latest ? latest->inst : NULL;
	pthread_mutex_unlock(&mu);
	PFN_CreateDevice create = (PFN_CreateDevice)gipa(inst, "vkCreateDevice");
	if (!create) return VK_ERROR_INITIALIZATION_FAILED;
	VkResult r = create(pd, info, alloc, out);
	if (r != VK_SUCCESS) return r;
	pthread_mutex_lock(&mu);
	Dev *slot = NULL;
	for (int i = 0; !slot && i < MAXN; i++)
		if (!devs[i].dev) slot = &devs[i];
	if (slot) {
		slot->dev = *out;
		slot->gdpa = gdpa;
		slot->destroy = (PFN_DestroyDevice)gdpa(*out, "vkDestroyDevice");
	}
	pthread_mutex_unlock(&mu);
	if (!slot) {
		PFN_DestroyDevice d = (PFN_DestroyDevice)gdpa(*out, "vkDestroyDevice");
		if (d) d(*out, alloc);
		return VK_ERROR_INITIALIZATION_FAILED;
	}
	return VK_SUCCESS;
}

static void DestroyDevice(VkDevice dev, const void *alloc) {
	PFN_DestroyDevice d = NULL;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAXN; i++)
		if (devs[i].dev == dev && dev) {
			d = devs[i].destroy;
			memset(&devs[i], 0, sizeof devs[i]);
			break;
		}
	pthread_mutex_unlock(&mu);
	if (d) d(dev, alloc);
}

static PFN_vkVoidFunction GetDeviceProcAddr(VkDevice dev, const char *name);

static PFN_vkVoidFunction GetInstanceProcAddr(VkInstance inst, const char *name) {
	static const struct {
		const char *name;
		PFN_vkVoidFunction fn;
	} own[] = {
		{"vkGetInstanceProcAddr", (PFN_vkVoidFunction)GetInstanceProcAddr},
		{"vkGetDeviceProcAddr", (PFN_vkVoidFunction)GetDeviceProcAddr},
		{"vkCreateInstance", (PFN_vkVoidFunction)CreateInstance},
		{"vkDestroyInstance", (PFN_vkVoidFunction)DestroyInstance},
		{"vkCreateDevice", (PFN_vkVoidFunction)CreateDevice},
		{"vkDestroyDevice", (PFN_vkVoidFunction)DestroyDevice},
		{"vkGetPhysicalDeviceProperties", (PFN_vkVoidFunction)GetPhysicalDeviceProperties},
		{"vkGetPhysicalDeviceProperties2", (PFN_vkVoidFunction)GetPhysicalDeviceProperties2},
		{"vkGetPhysicalDeviceProperties2KHR", (PFN_vkVoidFunction)GetPhysicalDeviceProperties2KHR},
	};
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		if (!strcmp(name, own[i].name)) return own[i].fn;
	pthread_mutex_lock(&mu);
	Inst *s = find_inst(inst);
	PFN_vkGetInstanceProcAddr next = s ? s->gipa : NULL;
	pthread_mutex_unlock(&mu);
	return next ? next(inst, name) : NULL;
}

static PFN_vkVoidFunction GetDeviceProcAddr(VkDevice dev, const char *name) {
	if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)GetDeviceProcAddr;
	if (!strcmp(name, "vkDestroyDevice")) return (PFN_vkVoidFunction)DestroyDevice;
	PFN_vkGetDeviceProcAddr next = NULL;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAXN; i++)
		if (devs[i].dev == dev && dev) next = devs[i].gdpa;
	pthread_mutex_unlock(&mu);
	return next ? next(dev, name) : NULL;
}

// The loader's entry point for layers of interface version 2 and later.
EXPORT VkResult vkNegotiateLoaderLayerInterfaceVersion(NegotiateLayerInterface *v) {
	if (!v || v->sType != LAYER_NEGOTIATE_INTERFACE_STRUCT || v->loaderLayerInterfaceVersion < 2)
		return VK_ERROR_INITIALIZATION_FAILED;
	v->loaderLayerInterfaceVersion = 2;
	v->pfnGetInstanceProcAddr = GetInstanceProcAddr;
	v->pfnGetDeviceProcAddr = GetDeviceProcAddr;
	v->pfnGetPhysicalDeviceProcAddr = NULL;
	return VK_SUCCESS;
}
