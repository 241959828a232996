// Built instead of litert_backend.cpp when no libLiteRt.so was found at configure time:
// --runtime tflite then exits with a usage error that says so.
#include "backend.h"

namespace slmh {

std::unique_ptr<Backend> make_litert_backend() { return nullptr; }

}  // namespace slmh
