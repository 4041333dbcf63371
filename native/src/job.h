// Job: one addon operation returning a Promise. `work` runs on a libuv pool thread (or inline when the
// input is small: a round trip through the pool costs more than the work), `result` builds the JS value
// on the JS thread. The objects among the call's arguments are referenced until then so that GC cannot
// free the buffers the work reads or writes.
#pragma once

#include <napi.h>

#include <functional>
#include <vector>

namespace gt {

constexpr size_t kInlineBytes = 256 * 1024;

class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, "git-tensor-kernel"), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), result_(std::move(result)) {}

  static Napi::Value run(const Napi::CallbackInfo& info, size_t bytes, std::function<void()> work,
                         std::function<Napi::Value(Napi::Env)> result) {
    Napi::Env env = info.Env();
    if (bytes < kInlineBytes) {
      Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
      try {
        work();
        d.Resolve(result(env));
      } catch (const std::exception& e) {
        d.Reject(Napi::Error::New(env, e.what()).Value());
      }
      return d.Promise();
    }
    Job* job = new Job(env, std::move(work), std::move(result));
    for (size_t i = 0; i < info.Length(); i++)
      if (info[i].IsObject()) job->keep_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    Napi::Promise p = job->deferred_.Promise();
    job->Queue();
    return p;
  }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(result_(Env())); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::vector<Napi::ObjectReference> keep_;
};

}  // namespace gt
