/* The anvil runtime's C API: the same Device / Session / Request objects as anvil/runtime/runtime.h
 * behind opaque handles, for programs in C and other languages.
 *
 *   anvil_device_open -> anvil_session_create (a program file) -> anvil_session_run, or
 *   anvil_session_submit -> anvil_request_wait / anvil_session_receive -> anvil_request_output.
 *
 * Every call returns an anvil_status; on failure anvil_last_error() is the one-line message of the
 * calling thread's last failed call (valid until its next failing call). Handles are freed by
 * their close/destroy/release call; every handle is thread-safe except for its own release. */
#ifndef ANVIL_RUNTIME_ANVIL_RT_H_
#define ANVIL_RUNTIME_ANVIL_RT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Error codes: the runtime's typed errors (anvil::ErrorCode + 1). */
typedef enum anvil_status {
  ANVIL_OK = 0,
  ANVIL_ERR_INVALID_ARGUMENT = 1, /**< invalid input (name/shape/dtype), spec, option, program/device mismatch */
  ANVIL_ERR_NOT_FOUND = 2,        /**< a file that does not exist */
  ANVIL_ERR_PARSE = 3,            /**< a program file that is not one */
  ANVIL_ERR_UNSUPPORTED = 4,
  ANVIL_ERR_DEVICE_FAULT = 5,     /**< the device faulted (the runtime reset it) */
  ANVIL_ERR_TIMEOUT = 6,          /**< queue timeout */
  ANVIL_ERR_BUSY = 7,             /**< device busy: a non-blocking submit on a full queue */
  ANVIL_ERR_CLOSED = 8,           /**< closed session or device */
  ANVIL_ERR_INTERNAL = 9
} anvil_status;

/** Element types (same values as ONNX's TensorProto.DataType). */
typedef enum anvil_dtype { ANVIL_DTYPE_FLOAT32 = 1, ANVIL_DTYPE_INT8 = 3 } anvil_dtype;
typedef enum anvil_layout { ANVIL_LAYOUT_NCHW = 0, ANVIL_LAYOUT_NC = 1, ANVIL_LAYOUT_ANY = 2 } anvil_layout;
typedef enum anvil_request_state {
  ANVIL_REQUEST_PENDING = 0,
  ANVIL_REQUEST_COMPLETED = 1,
  ANVIL_REQUEST_TIMEOUT = 2, /**< still pending when the wait ended */
  ANVIL_REQUEST_ERROR = 3
} anvil_request_state;

typedef struct anvil_device anvil_device;
typedef struct anvil_session anvil_session;
typedef struct anvil_request anvil_request;

#define ANVIL_MAX_RANK 8

/** An input or output of a loaded program. name points into the session (valid while it lives). */
typedef struct anvil_tensor_info {
  const char* name;
  int32_t dtype;  /**< anvil_dtype on the device (int8) */
  int32_t layout; /**< anvil_layout */
  size_t rank;
  int64_t dims[ANVIL_MAX_RANK];
  float scale; /**< real = (q - zero_point) * scale */
  int32_t zero_point;
  uint64_t bytes;
} anvil_tensor_info;

/** An input tensor: int8 as is, float32 quantized on the host with the input's scale/zero point. */
typedef struct anvil_tensor {
  const char* name;
  int32_t dtype; /**< ANVIL_DTYPE_INT8 or ANVIL_DTYPE_FLOAT32 */
  size_t rank;
  const int64_t* dims;
  const void* data; /**< dense, row-major */
} anvil_tensor;

typedef struct anvil_session_options {
  uint32_t queue_depth;    /**< requests in flight, 1..63 (default 2) */
  int blocking_submit;     /**< 1: a full queue makes submit wait (default); 0: ANVIL_ERR_BUSY */
  double timeout_s;        /**< host seconds for a blocking submit and for run (default 60) */
  double device_timeout_s; /**< a request not completed by then is a device fault (default 300) */
} anvil_session_options;

typedef struct anvil_run_stats {
  uint64_t cycles;         /**< PE cycles of the program run */
  uint64_t request_cycles; /**< firmware start to completion, PCIe included */
  uint64_t submit_cycle, start_cycle, end_cycle;
  uint32_t pe_mask; /**< the unit that ran it */
  double latency_us, queue_latency_us;
} anvil_run_stats;

/** The calling thread's last error message ("" when none). */
const char* anvil_last_error(void);
/** "ok", "invalid argument", ... */
const char* anvil_status_name(anvil_status status);

/** Opens a device by spec (see rt::parse_device_spec; NULL or "" = $ANVIL_DEVICES or warboy(1)*1)
 * with hardware preset `preset` (NULL: "warboy-2pe" when the spec uses PE 1, else "warboy") and
 * `num_settings` overrides "key=value" (hw::HwConfig::set). A power cycle of the platform. */
anvil_status anvil_device_open(const char* spec, const char* preset, const char* const* settings, size_t num_settings,
                               anvil_device** out);
/** Units (PEs or fused pairs) requests are spread over. */
anvil_status anvil_device_num_units(const anvil_device* device, size_t* out);
/** Frees the handle. Sessions created on it keep the device open and usable until they are
 * destroyed; the device closes with its last session (a later anvil_device_open resets it anyway). */
anvil_status anvil_device_close(anvil_device* device);

void anvil_session_options_default(anvil_session_options* options);
/** Loads a program file (from anvil compile). options NULL: defaults. */
anvil_status anvil_session_create(anvil_device* device, const char* program_path, const anvil_session_options* options,
                                  anvil_session** out);
/** The same from a program image in memory. */
anvil_status anvil_session_create_from_memory(anvil_device* device, const void* image, size_t bytes,
                                              const anvil_session_options* options, anvil_session** out);
/** Waits for the session's requests in flight and frees it. */
anvil_status anvil_session_destroy(anvil_session* session);
anvil_status anvil_session_num_inputs(const anvil_session* session, size_t* out);
anvil_status anvil_session_num_outputs(const anvil_session* session, size_t* out);
anvil_status anvil_session_input_info(const anvil_session* session, size_t index, anvil_tensor_info* out);
anvil_status anvil_session_output_info(const anvil_session* session, size_t index, anvil_tensor_info* out);

/** Runs one request and copies the int8 outputs, in output order, into outputs[i] (output_bytes[i]
 * must equal the output's bytes). */
anvil_status anvil_session_run(anvil_session* session, const anvil_tensor* inputs, size_t num_inputs,
                               void* const* outputs, const size_t* output_bytes, size_t num_outputs);
/** Queues one request; *out is its handle (release it). context comes back with the request. */
anvil_status anvil_session_submit(anvil_session* session, const anvil_tensor* inputs, size_t num_inputs, void* context,
                                  anvil_request** out);
/** The next finished request not yet received or waited for (a new handle: release it). */
anvil_status anvil_session_receive(anvil_session* session, double timeout_s, anvil_request** out);

/** Waits up to timeout_s: *state is COMPLETED, ERROR or TIMEOUT (still pending). */
anvil_status anvil_request_wait(anvil_request* request, double timeout_s, anvil_request_state* state);
anvil_status anvil_request_context(const anvil_request* request, void** context);
/** Copies output `name` (int8) into dst (bytes must equal its size). A failed request returns its
 * error (e.g. ANVIL_ERR_DEVICE_FAULT), a pending one ANVIL_ERR_BUSY. */
anvil_status anvil_request_output(const anvil_request* request, const char* name, void* dst, size_t bytes);
/** The request's run statistics; ANVIL_ERR_BUSY while it is pending. */
anvil_status anvil_request_stats(const anvil_request* request, anvil_run_stats* out);
anvil_status anvil_request_release(anvil_request* request);

#ifdef __cplusplus
}
#endif

#endif /* ANVIL_RUNTIME_ANVIL_RT_H_ */
