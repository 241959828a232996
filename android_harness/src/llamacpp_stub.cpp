// Built instead of llamacpp_backend.cpp when CMake was given no llama.cpp (LLAMACPP_SOURCE_DIR):
// --runtime llamacpp then exits with a usage error that says so.
#include "backend.h"

namespace slmh {

std::unique_ptr<Backend> make_llamacpp_backend() { return nullptr; }

}  // namespace slmh
