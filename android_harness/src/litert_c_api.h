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
//   * Accelerators (litert/c/litert_accelerator.h): LiteRtGetNumAccelerators(env, &n),
//     LiteRtGetAccelerator(env, i, &accelerator), LiteRtGetAcceleratorName(accelerator,
//     &name) and LiteRtGetAcceleratorHardwareSupport(accelerator, &int bits). The environment
//     registers the CPU accelerator (XNNPACK, built in) and, where it can dlopen one, a GPU
//     accelerator library (2.3.0's .rodata names libLiteRtGpuAccelerator.so,
//     libLiteRtWebGpuAccelerator.so, libLiteRtOpenClAccelerator.so and
//     libLiteRtVulkanAccelerator.so). LiteRtCompiledModelIsFullyAccelerated and
//     LiteRtCompiledModelIsNonCpuFullyAccelerated take (compiled, bool*): the disassembly of
//     2.3.0 null-checks both arguments and stores one byte through the second.
//   * Profiling (litert/c/litert_profiler.h, litert_profiler_event.h,
//     options/litert_runtime_options.h): the runtime options are opaque options with the
//     identifier "runtime_options_string" and a TOML payload ("enable_profiling = true\n"),
//     which is what LrtGetOpaqueRuntimeOptionsData builds (the Lrt* helpers are not exported
//     by 2.3.0; the identifier string is in its .rodata). ProfiledEventData is 104 bytes,
//     NOT the 88 of the C branch of litert_profiler_event.h: the library is C++ and copies
//     the C++ struct, whose two tflite::profiling::memory::MemoryUsage members are 24 bytes
//     each (int64 mem_footprint_kb, size_t total_allocated_bytes, in_use_allocated_bytes),
//     where the C header's LiteRtMemoryUsage has 16. Checked in the disassembly of
//     LiteRtGetProfilerEvents (2.3.0, x86_64): the event count is (end - begin) / 8 * inverse(13),
//     i.e. a 104-byte element, and the copy loop moves 0x68 bytes per event; and at run time
//     (tests/native/test_litert_profile.py): every tag at that stride is an op name, times are
//     monotonic, metadata1 is the node index.
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
typedef struct LiteRtProfilerT* LiteRtProfiler;
typedef struct LiteRtAcceleratorT* LiteRtAccelerator;
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

// Accelerators registered to an environment (litert_accelerator.h).
LiteRtStatus LiteRtGetNumAccelerators(LiteRtEnvironment env, LiteRtParamIndex* num);
LiteRtStatus LiteRtGetAccelerator(LiteRtEnvironment env, LiteRtParamIndex index, LiteRtAccelerator* accelerator);
LiteRtStatus LiteRtGetAcceleratorName(LiteRtAccelerator accelerator, const char** name);
// `hardware`: a bit field of kSlmhLiteRt{Cpu,Gpu} (LiteRtHwAcceleratorSet is an int).
LiteRtStatus LiteRtGetAcceleratorHardwareSupport(LiteRtAccelerator accelerator, int* hardware);

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

// Whether every op went to the selected accelerator(s) (no op left to the TFLite
// interpreter's own kernels), and whether every op went to a non-CPU accelerator.
LiteRtStatus LiteRtCompiledModelIsFullyAccelerated(LiteRtCompiledModel compiled, bool* fully_accelerated);
LiteRtStatus LiteRtCompiledModelIsNonCpuFullyAccelerated(LiteRtCompiledModel compiled, bool* fully_accelerated);

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

// Profiling. The compiled model owns its profiler (present when the options carried
// "enable_profiling = true"); events are recorded between Start and Stop.
#define SLMH_LITERT_RUNTIME_OPTIONS_ID "runtime_options_string"

// tflite::Profiler::EventType bits.
enum {
  kSlmhProfDefault = 1,
  kSlmhProfOperatorInvoke = 2,
  kSlmhProfDelegateOperatorInvoke = 4,
  kSlmhProfDelegateProfiledOperatorInvoke = 8,
  kSlmhProfGeneralRuntimeInstrumentation = 16,
};

// ProfiledEventSource.
enum { kSlmhSourceLiteRt = 0, kSlmhSourceTfLiteInterpreter = 1, kSlmhSourceTfLiteDelegate = 2 };

// tflite::profiling::memory::MemoryUsage (24 bytes).
typedef struct {
  int64_t mem_footprint_kb;
  uint64_t total_allocated_bytes;
  uint64_t in_use_allocated_bytes;
} SlmhLiteRtMemoryUsage;

// ProfiledEventData as the library lays it out (C++ definition, 104 bytes on LP64).
typedef struct {
  const char* tag;  // owned by the profiler
  int event_type;   // kSlmhProf* bits
  uint64_t start_timestamp_us;
  uint64_t elapsed_time_us;
  SlmhLiteRtMemoryUsage begin_mem_usage;
  SlmhLiteRtMemoryUsage end_mem_usage;
  uint64_t event_metadata1;  // operator events: the node index
  uint64_t event_metadata2;  // operator events: the subgraph index
  int event_source;          // kSlmhSource*
} SlmhProfiledEventData;

LiteRtStatus LiteRtCompiledModelGetProfiler(LiteRtCompiledModel compiled, LiteRtProfiler* profiler);
LiteRtStatus LiteRtStartProfiler(LiteRtProfiler profiler);
LiteRtStatus LiteRtStopProfiler(LiteRtProfiler profiler);
LiteRtStatus LiteRtResetProfiler(LiteRtProfiler profiler);
LiteRtStatus LiteRtGetNumProfilerEvents(LiteRtProfiler profiler, int* num_events);
// Copies all events; fails unless num_events >= the number recorded (and > 0).
LiteRtStatus LiteRtGetProfilerEvents(LiteRtProfiler profiler, int num_events, SlmhProfiledEventData* events);

#ifdef __cplusplus
}  // extern "C"

static_assert(sizeof(SlmhProfiledEventData) == 104 || sizeof(void*) != 8,
              "ProfiledEventData is 104 bytes on LP64 targets (LiteRT 2.3)");

static_assert(sizeof(SlmhLiteRtRankedTensorType) == 72 || sizeof(void*) != 8,
              "LiteRtRankedTensorType is 72 bytes on LP64 targets");
#endif
