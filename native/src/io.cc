// File and pipe helpers the store and the filter process need and Node lacks: pipe sizing,
// aligned buffers for O_DIRECT, preallocation.
//
// Pipe sizing: git streams a file to and from its long-running filter in
// 64 KiB pkt-lines over a pipe whose default capacity is also 64 KiB, so every packet costs a pair of
// context switches; at 1 MiB git and the filter each move many packets per wake-up. Measured here with
// a filter that does no work: checking out 256 MiB takes 2.1 s through a 64 KiB pipe, 0.6 s through 1 MiB.
#include "io.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__linux__)
#include <fcntl.h>
#endif

namespace gt {
namespace {

// setPipeSize(fd, bytes) -> the pipe's capacity afterwards, or 0 where it cannot be changed (not a
// pipe, not Linux, or above /proc/sys/fs/pipe-max-size for an unprivileged process).
Napi::Value SetPipeSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "setPipeSize(fd, bytes): expected two numbers");
  }
#if defined(__linux__) && defined(F_SETPIPE_SZ)
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const int bytes = info[1].As<Napi::Number>().Int32Value();
  const int got = fcntl(fd, F_SETPIPE_SZ, bytes);
  return Napi::Number::New(env, got < 0 ? 0 : got);
#else
  return Napi::Number::New(env, 0);
#endif
}

// alignedBuffer(bytes, alignment) -> a Buffer whose memory starts at a multiple of `alignment` (a power
// of two, at least the pointer size): O_DIRECT writes of a pack (src/store/pack.ts) need the memory, the
// file offset and the length aligned to the device's block size. Freed when the Buffer is collected.
Napi::Value AlignedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "alignedBuffer(bytes, alignment): expected two numbers");
  }
  const double bytes = info[0].As<Napi::Number>().DoubleValue();
  const double alignment = info[1].As<Napi::Number>().DoubleValue();
  const size_t a = static_cast<size_t>(alignment);
  if (!(bytes > 0) || bytes > (1u << 30) || a < sizeof(void*) || a > (1u << 20) || (a & (a - 1)) != 0) {
    throw Napi::RangeError::New(env, "alignedBuffer: bytes must be in 1..2^30, alignment a power of two in 8..2^20");
  }
  void* data = nullptr;
  if (posix_memalign(&data, a, static_cast<size_t>(bytes)) != 0) throw Napi::Error::New(env, "alignedBuffer: out of memory");
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(data), static_cast<size_t>(bytes), [](Napi::Env, uint8_t* p) { free(p); });
}

// preallocate(fd, bytes) -> true when the filesystem reserved the file's blocks (fallocate, keeping
// the size 0), false where it cannot (not Linux, or a filesystem without fallocate). Checkout writes
// a large file into a temp file and renames it over the pointer git left; on ext4, renaming over an
// existing file first allocates every delayed-allocation block of the new one (auto_da_alloc), which
// for 1 GiB took 0.45-0.6 s of the rename here. Reserved up front, there is nothing left to allocate,
// and a disk too small for the file says so before any byte is written (ENOSPC is thrown).
Napi::Value Preallocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "preallocate(fd, bytes): expected two numbers");
  }
#if defined(__linux__)
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const off_t bytes = static_cast<off_t>(info[1].As<Napi::Number>().Int64Value());
  if (bytes <= 0) return Napi::Boolean::New(env, false);
  int rc;
  do rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, bytes);
  while (rc < 0 && errno == EINTR);
  if (rc == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOSPC || errno == EDQUOT || errno == EFBIG) {
    Napi::Error e = Napi::Error::New(env, std::string("fallocate: ") + std::strerror(errno));
    e.Set("code", Napi::String::New(env, errno == EFBIG ? "EFBIG" : errno == EDQUOT ? "EDQUOT" : "ENOSPC"));
    throw e;
  }
  return Napi::Boolean::New(env, false);
#else
  return Napi::Boolean::New(env, false);
#endif
}

}  // namespace

void InitIo(Napi::Env env, Napi::Object exports) {
  exports.Set("setPipeSize", Napi::Function::New(env, SetPipeSize));
  exports.Set("alignedBuffer", Napi::Function::New(env, AlignedBuffer));
  exports.Set("preallocate", Napi::Function::New(env, Preallocate));
}

}  // namespace gt
