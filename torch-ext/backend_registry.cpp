// The table of kernel backends registered by the arch-group translation units.
#include "backend_registry.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <sstream>

namespace static_fp8_mlp {
namespace {

struct Table {
  std::mutex mutex;
  std::vector<KernelBackend> backends;
};

Table& table() {
  static Table t;  // constructed on first use: safe whatever the static-init order
  return t;
}

// sm_90a / sm_100a code runs only on exactly that chip; plain sm_XY code runs on
// the same major with an equal or newer minor.
bool covers(int arch, int major, int minor) {
  const int arch_major = arch / 10;
  const int arch_minor = arch % 10;
  if (arch_major != major) return false;
  if (major == 9 || major == 10) return arch_minor == minor;
  return minor >= arch_minor;
}

}  // namespace

bool register_backend(const KernelBackend& backend) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  t.backends.push_back(backend);
  return true;
}

const KernelBackend* find_backend(int major, int minor) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  const KernelBackend* best = nullptr;
  for (const KernelBackend& b : t.backends) {
    for (int arch : b.archs) {
      if (covers(arch, major, minor) && (best == nullptr || b.priority > best->priority)) {
        best = &b;
      }
    }
  }
  return best;
}

std::string covered_archs() {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  std::vector<int> all;
  for (const KernelBackend& b : t.backends)
    for (int a : b.archs) {
      bool seen = false;
      for (int x : all) seen = seen || x == a;
      if (!seen) all.push_back(a);
    }
  std::ostringstream os;
  for (size_t i = 0; i < all.size(); ++i) {
    os << (i ? ", " : "") << all[i] / 10 << "." << all[i] % 10;
  }
  return all.empty() ? std::string("none") : os.str();
}

std::vector<int> parse_arch_list(const char* list) {
  std::vector<int> archs;
  const char* p = list;
  while (p != nullptr && *p != '\0') {
    char* end = nullptr;
    const long v = std::strtol(p, &end, 10);
    if (end == p) break;
    archs.push_back(static_cast<int>(v / 10));  // 890 -> 89
    p = (*end == ',') ? end + 1 : end;
  }
  return archs;
}

DeviceArch device_arch(int device) {
  static std::array<std::atomic<int>, 64> cache{};  // 10 * major + minor, 0 = unknown
  std::atomic<int>& slot = cache[static_cast<size_t>(device) & 63];
  int v = slot.load(std::memory_order_relaxed);
  if (v == 0) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    v = 10 * major + minor;
    slot.store(v, std::memory_order_relaxed);
  }
  return {v / 10, v % 10};
}

namespace {
using AttributeCache = std::array<std::atomic<int>, 64>;

// A positive device attribute, queried once per device; `fallback` when the query fails
// or gives 0 (cached too, unless it is 0: then the next call asks again).
int cached_attribute(AttributeCache& cache, int device, cudaDeviceAttr attr, int fallback) {
  std::atomic<int>& slot = cache[static_cast<size_t>(device) & 63];
  int v = slot.load(std::memory_order_relaxed);
  if (v > 0) return v;
  if (cudaDeviceGetAttribute(&v, attr, device) != cudaSuccess || v <= 0) {
    (void)cudaGetLastError();
    v = fallback;
  }
  slot.store(v, std::memory_order_relaxed);
  return v;
}
}  // namespace

int sm_count(int device) {
  static AttributeCache cache{};
  return cached_attribute(cache, device, cudaDevAttrMultiProcessorCount, 1);
}

int smem_per_block_optin(int device) {
  static AttributeCache cache{};
  return cached_attribute(cache, device, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
}

}  // namespace static_fp8_mlp
