// Minimal declarations of the LiteRT C API (libLiteRt.so) that the harness uses.
//
// The ai-edge-litert wheel ships libLiteRt.so without headers. These declarations are
// written for this project from the public API of google-ai-edge/LiteRT (Apache-2.0),
// headers litert/c/litert_{common,model,model_types,layout,environment,options,
// opaque_options,compiled_model,tensor_buffer,tensor_buffer_requirements}.h, and were
// checked against the exported symbols of the libLiteRt.so in ai-edge-litert 2.3.0:
//
//   * LiteRtCreateModelFromFile takes the environment first (LiteRT 2.x); older
//     releases took (filename, model) -- disassembly of the 2.3.0 library reads the
//     file name from the second argument register.
//   * LiteRtGetRankedTensorType copies 72 bytes: the element type, then the 68-byte
//     layout {rank:7, has_strides:1, int32 dimensions[8], uint32 strides[8]}.
//
// Only what the harness calls is declared; every handle is opaque.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int LiteRtStatus;  // 0 = ok; see litert_common.h for the codes
#define SLMH_LITERT_OK 0

typedef struct LiteRtEnvironmentT* LiteRtEnvironment;
typedef struct LiteRtModelT* LiteRtModel;
typedef struct LiteRtSignatureT* LiteRtSignature;
typedef struct LiteRtTensorT* LiteRtTensor;
typedef struct LiteRtOptionsT* LiteRtOptions;
typedef struct LiteRtOpaqueOptionsT* LiteRtOpaqueOptions;
typedef struct LiteRtCompiledModelT* LiteRtCompiledModel;
typedef struct LiteRtTensorBufferT* LiteRtTensorBuffer;
typedef struct LiteRtTensorBufferRequirementsT* LiteRtTensorBufferRequirements;
typedef size_t LiteRtParamIndex;

// LiteRtHwAccelerators bits.
enum { kSlmhLiteRtCpu = 1, kSlmhLiteRtGpu = 2 };

// LiteRtElementType values (the TfLiteType numbering).
enum {
  kSlmhLiteRtFloat32 = 1,
  kSlmhLiteRtInt32 = 2,
  kSlmhLiteRtUInt8 = 3,
  kSlmhLiteRtInt64 = 4,
  kSlmhLiteRtBool = 6,
  kSlmhLiteRtInt16 = 7,
  kSlmhLiteRtInt8 = 9,
  kSlmhLiteRtFloat16 = 10,
  kSlmhLiteRtFloat64 = 11,
};

// LiteRtTensorBufferLockMode.
enum { kSlmhLockRead = 0, kSlmhLockWrite = 1 };

#define SLMH_LITERT_MAX_RANK 8

// LiteRtRankedTensorType, ABI-stable in LiteRT 2.x (72 bytes on LP64).
typedef struct {
  int element_type;
  unsigned int rank : 7;
  bool has_strides : 1;
  int32_t dimensions[SLMH_LITERT_MAX_RANK];
  uint32_t strides[SLMH_LITERT_MAX_RANK];
} SlmhLiteRtRankedTensorType;

// Environment (options are optional: 0, NULL).
LiteRtStatus LiteRtCreateEnvironment(int num_options, const void* options, LiteRtEnvironment* env);
void LiteRtDestroyEnvironment(LiteRtEnvironment env);

// Model and signatures.
LiteRtStatus LiteRtCreateModelFromFile(LiteRtEnvironment env, const char* filename, LiteRtModel* model);
void LiteRtDestroyModel(LiteRtModel model);
LiteRtStatus LiteRtGetNumModelSignatures(LiteRtModel model, LiteRtParamIndex* num);
LiteRtStatus LiteRtGetModelSignature(LiteRtModel model, LiteRtParamIndex index, LiteRtSignature* sig);
LiteRtStatus LiteRtGetSignatureKey(LiteRtSignature sig, const char** key);
LiteRtStatus LiteRtGetNumSignatureInputs(LiteRtSignature sig, LiteRtParamIndex* num);
LiteRtStatus LiteRtGetSignatureInputName(LiteRtSignature sig, LiteRtParamIndex index, const char** name);
LiteRtStatus LiteRtGetSignatureInputTensorByIndex(LiteRtSignature sig, LiteRtParamIndex index, LiteRtTensor* t);
LiteRtStatus LiteRtGetNumSignatureOutputs(LiteRtSignature sig, LiteRtParamIndex* num);
LiteRtStatus LiteRtGetSignatureOutputName(LiteRtSignature sig, LiteRtParamIndex index, const char** name);
LiteRtStatus LiteRtGetSignatureOutputTensorByIndex(LiteRtSignature sig, LiteRtParamIndex index, LiteRtTensor* t);
LiteRtStatus LiteRtGetRankedTensorType(LiteRtTensor tensor, SlmhLiteRtRankedTensorType* type);

// Compilation options. CPU options travel as opaque options with the identifier
// "xnnpack" and a TOML payload ("num_threads = N\n"), which is what LiteRT's own
// LrtGetOpaqueCpuOptionsData builds; the payload is freed by the destructor given.
LiteRtStatus LiteRtCreateOptions(LiteRtOptions* options);
void LiteRtDestroyOptions(LiteRtOptions options);
LiteRtStatus LiteRtSetOptionsHardwareAccelerators(LiteRtOptions options, int accelerators);
LiteRtStatus LiteRtCreateOpaqueOptions(const char* identifier, void* payload, void (*destructor)(void*),
                                       LiteRtOpaqueOptions* out);
LiteRtStatus LiteRtAddOpaqueOptions(LiteRtOptions options, LiteRtOpaqueOptions opaque);

// Compiled model.
LiteRtStatus LiteRtCreateCompiledModel(LiteRtEnvironment env, LiteRtModel model, LiteRtOptions options,
                                       LiteRtCompiledModel* compiled);
void LiteRtDestroyCompiledModel(LiteRtCompiledModel compiled);
LiteRtStatus LiteRtGetCompiledModelInputBufferRequirements(LiteRtCompiledModel compiled, LiteRtParamIndex signature,
                                                           LiteRtParamIndex input,
                                                           LiteRtTensorBufferRequirements* req);
LiteRtStatus LiteRtGetCompiledModelOutputBufferRequirements(LiteRtCompiledModel compiled, LiteRtParamIndex signature,
                                                            LiteRtParamIndex output,
                                                            LiteRtTensorBufferRequirements* req);
LiteRtStatus LiteRtRunCompiledModel(LiteRtCompiledModel compiled, LiteRtParamIndex signature, size_t num_inputs,
                                    LiteRtTensorBuffer* inputs, size_t num_outputs, LiteRtTensorBuffer* outputs);

// Tensor buffers.
LiteRtStatus LiteRtGetTensorBufferRequirementsBufferSize(LiteRtTensorBufferRequirements req, size_t* size);
LiteRtStatus LiteRtCreateManagedTensorBufferFromRequirements(LiteRtEnvironment env,
                                                             const SlmhLiteRtRankedTensorType* type,
                                                             LiteRtTensorBufferRequirements req,
                                                             LiteRtTensorBuffer* buffer);
LiteRtStatus LiteRtLockTensorBuffer(LiteRtTensorBuffer buffer, void** host_addr, int lock_mode);
LiteRtStatus LiteRtUnlockTensorBuffer(LiteRtTensorBuffer buffer);
// Fails unless the buffer lives in host memory (true for the CPU accelerator's buffers).
LiteRtStatus LiteRtGetTensorBufferHostMemory(LiteRtTensorBuffer buffer, void** host_addr);
void LiteRtDestroyTensorBuffer(LiteRtTensorBuffer buffer);

#ifdef __cplusplus
}  // extern "C"

static_assert(sizeof(SlmhLiteRtRankedTensorType) == 72 || sizeof(void*) != 8,
              "LiteRtRankedTensorType is 72 bytes on LP64 targets");
#endif
