// A Uint8Array's bytes as seen from native code, for the store's codec and chunk batches.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace gt {

struct View {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// Asks Node-API for the data pointer only, so views of SharedArrayBuffers work too (asking for the
// ArrayBuffer fails for them). `what` names the argument in the TypeError.
inline View view_of(const Napi::Value& v, const char* what) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (!v.IsTypedArray() || napi_get_typedarray_info(v.Env(), v, &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Uint8Array");
  }
  return {static_cast<const uint8_t*>(data), length};
}

}  // namespace gt
