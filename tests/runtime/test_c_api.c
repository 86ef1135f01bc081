/* The runtime's C API, compiled as C: every call, and the typed errors it reports. */
#define _POSIX_C_SOURCE 200809L /* setenv, strdup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anvil/runtime/anvil_rt.h"

size_t anvil_test_conv_program(void** image);
void anvil_test_conv_expected(const int8_t* x, int8_t* y);

static int failures = 0;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, \
              __LINE__, #cond, anvil_last_error());                          \
      failures++;                                                            \
    }                                                                        \
  } while (0)

enum { kIn = 3 * 8 * 8, kOut = 4 * 8 * 8 };
static const int64_t kInDims[4] = {1, 3, 8, 8};

static void fill(int8_t* x, int seed) {
  int i;
  for (i = 0; i < kIn; ++i) x[i] = (int8_t)((i * 37 + seed * 11) % 256 - 128);
}

static anvil_tensor input(const int8_t* x) {
  anvil_tensor t;
  t.name = "x";
  t.dtype = ANVIL_DTYPE_INT8;
  t.rank = 4;
  t.dims = kInDims;
  t.data = x;
  return t;
}

int main(void) {
  anvil_device* dev = NULL;
  anvil_session* s = NULL;
  anvil_request* r = NULL;
  anvil_session_options o;
  anvil_tensor_info info;
  anvil_request_state state;
  anvil_run_stats stats;
  void* image = NULL;
  size_t image_bytes, n = 0;
  int8_t x[4][kIn], y[kOut], want[kOut];
  void* outputs[1];
  size_t output_bytes[1] = {kOut};
  int i, seen[4] = {0, 0, 0, 0};
  anvil_tensor bad;
  int64_t bad_dims[4] = {1, 3, 8, 9};

  /* Errors before a device exists: a bad spec, an unknown preset, a bad setting. */
  CHECK(anvil_device_open("warboy(7)*1", NULL, NULL, 0, &dev) == ANVIL_ERR_INVALID_ARGUMENT);
  CHECK(strstr(anvil_last_error(), "device spec") != NULL);
  CHECK(anvil_device_open("npu0pe0", "nope", NULL, 0, &dev) == ANVIL_ERR_INVALID_ARGUMENT);
  {
    const char* settings[1] = {"mac_rows=0"};
    CHECK(anvil_device_open("npu0pe0", NULL, settings, 1, &dev) == ANVIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(anvil_last_error(), "mac_rows") != NULL);
  }
  CHECK(anvil_device_open("warboy(99999999999)*1", NULL, NULL, 0, &dev) == ANVIL_ERR_INVALID_ARGUMENT);
  CHECK(strstr(anvil_last_error(), "device spec") != NULL);
  /* No spec: $ANVIL_DEVICES gives it, and its errors name the variable; a bad setting is not blamed on it. */
  {
    const char* saved = getenv("ANVIL_DEVICES");
    char* saved_copy = saved ? strdup(saved) : NULL;
    const char* settings[1] = {"mac_rows=0"};
    setenv("ANVIL_DEVICES", "bogus", 1);
    CHECK(anvil_device_open(NULL, NULL, NULL, 0, &dev) == ANVIL_ERR_INVALID_ARGUMENT);
    CHECK(strncmp(anvil_last_error(), "ANVIL_DEVICES: ", 15) == 0 && strstr(anvil_last_error(), "'bogus'") != NULL);
    setenv("ANVIL_DEVICES", "unix:/nonexistent/anvil.sock", 1);
    CHECK(anvil_device_open(NULL, NULL, NULL, 0, &dev) != ANVIL_OK);
    CHECK(strncmp(anvil_last_error(), "ANVIL_DEVICES: ", 15) == 0);
    setenv("ANVIL_DEVICES", "npu0pe0", 1);
    CHECK(anvil_device_open(NULL, NULL, settings, 1, &dev) == ANVIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(anvil_last_error(), "mac_rows") != NULL && strstr(anvil_last_error(), "ANVIL_DEVICES") == NULL);
    if (saved_copy) setenv("ANVIL_DEVICES", saved_copy, 1);
    else unsetenv("ANVIL_DEVICES");
    free(saved_copy);
  }
  CHECK(strcmp(anvil_status_name(ANVIL_ERR_BUSY), "busy") == 0);

  CHECK(anvil_device_open("warboy(2)*1", NULL, NULL, 0, &dev) == ANVIL_OK);
  CHECK(anvil_device_num_units(dev, &n) == ANVIL_OK && n == 2);
  image_bytes = anvil_test_conv_program(&image);
  anvil_session_options_default(&o);
  CHECK(o.queue_depth == 2 && o.blocking_submit == 1);
  o.queue_depth = 4;
  CHECK(anvil_session_create(dev, "/nonexistent/program.anvil", &o, &s) == ANVIL_ERR_NOT_FOUND);
  CHECK(anvil_session_create_from_memory(dev, image, image_bytes / 2, &o, &s) == ANVIL_ERR_PARSE);
  CHECK(anvil_session_create_from_memory(dev, image, image_bytes, &o, &s) == ANVIL_OK);

  /* Introspection. */
  CHECK(anvil_session_num_inputs(s, &n) == ANVIL_OK && n == 1);
  CHECK(anvil_session_num_outputs(s, &n) == ANVIL_OK && n == 1);
  CHECK(anvil_session_input_info(s, 0, &info) == ANVIL_OK);
  CHECK(strcmp(info.name, "x") == 0 && info.dtype == ANVIL_DTYPE_INT8 && info.layout == ANVIL_LAYOUT_NCHW);
  CHECK(info.rank == 4 && info.dims[1] == 3 && info.dims[3] == 8 && info.bytes == kIn);
  CHECK(info.zero_point == 3 && info.scale > 0.049f && info.scale < 0.051f);
  CHECK(anvil_session_output_info(s, 0, &info) == ANVIL_OK && strcmp(info.name, "y") == 0 && info.bytes == kOut);
  CHECK(anvil_session_output_info(s, 1, &info) == ANVIL_ERR_INVALID_ARGUMENT);

  /* Synchronous run. */
  fill(x[0], 0);
  anvil_test_conv_expected(x[0], want);
  outputs[0] = y;
  {
    anvil_tensor in = input(x[0]);
    CHECK(anvil_session_run(s, &in, 1, outputs, output_bytes, 1) == ANVIL_OK);
    CHECK(memcmp(y, want, kOut) == 0);
    /* Invalid inputs: wrong shape, wrong name. */
    bad = in;
    bad.dims = bad_dims;
    CHECK(anvil_session_run(s, &bad, 1, outputs, output_bytes, 1) == ANVIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(anvil_last_error(), "[1, 3, 8, 9]") != NULL);
    bad = in;
    bad.name = "z";
    CHECK(anvil_session_submit(s, &bad, 1, NULL, &r) == ANVIL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(anvil_last_error(), "'z'") != NULL);
    /* NULL output buffer with NULL sizes: an error, not a crash. */
    {
      void* no_outputs[1] = {NULL};
      CHECK(anvil_session_run(s, &in, 1, no_outputs, NULL, 1) == ANVIL_ERR_INVALID_ARGUMENT);
      CHECK(strstr(anvil_last_error(), "output_bytes") != NULL);
      CHECK(anvil_session_run(s, &in, 1, no_outputs, output_bytes, 1) == ANVIL_ERR_INVALID_ARGUMENT);
      CHECK(strstr(anvil_last_error(), "NULL buffer") != NULL);
      CHECK(anvil_session_run(s, &in, 1, NULL, output_bytes, 1) == ANVIL_ERR_INVALID_ARGUMENT);
    }
    /* Dims far larger than the data: rejected against the program's shape before any copy. */
    {
      const int64_t huge_dims[4] = {1, 3, 8, (int64_t)1 << 50};
      bad = in;
      bad.dims = huge_dims;
      CHECK(anvil_session_run(s, &bad, 1, outputs, output_bytes, 1) == ANVIL_ERR_INVALID_ARGUMENT);
      CHECK(strstr(anvil_last_error(), "the program expects [1, 3, 8, 8]") != NULL);
      CHECK(anvil_session_submit(s, &bad, 1, NULL, &r) == ANVIL_ERR_INVALID_ARGUMENT);
    }
  }

  /* Asynchronous: four requests with their contexts, received in completion order. */
  for (i = 0; i < 4; ++i) {
    anvil_tensor in;
    fill(x[i], i + 1);
    in = input(x[i]);
    CHECK(anvil_session_submit(s, &in, 1, &seen[i], &r) == ANVIL_OK);
    if (i == 0) {
      CHECK(anvil_request_wait(r, 60.0, &state) == ANVIL_OK && state == ANVIL_REQUEST_COMPLETED);
      CHECK(anvil_request_output(r, "y", y, kOut) == ANVIL_OK);
      anvil_test_conv_expected(x[0], want);
      CHECK(memcmp(y, want, kOut) == 0);
      CHECK(anvil_request_output(r, "nope", y, kOut) == ANVIL_ERR_NOT_FOUND);
      CHECK(anvil_request_output(r, "y", y, kOut - 1) == ANVIL_ERR_INVALID_ARGUMENT);
      seen[0]++;
    }
    CHECK(anvil_request_release(r) == ANVIL_OK);
  }
  for (i = 0; i < 3; ++i) { /* request 0 was waited for: receive skips it */
    void* ctx = NULL;
    int k;
    CHECK(anvil_session_receive(s, 60.0, &r) == ANVIL_OK);
    CHECK(anvil_request_wait(r, 0.0, &state) == ANVIL_OK && state == ANVIL_REQUEST_COMPLETED);
    CHECK(anvil_request_context(r, &ctx) == ANVIL_OK && ctx != NULL);
    k = (int)((int*)ctx - seen);
    CHECK(k >= 1 && k <= 3);
    if (k >= 1 && k <= 3) {
      seen[k]++;
      CHECK(anvil_request_output(r, "y", y, kOut) == ANVIL_OK);
      anvil_test_conv_expected(x[k], want);
      CHECK(memcmp(y, want, kOut) == 0);
    }
    CHECK(anvil_request_stats(r, &stats) == ANVIL_OK);
    CHECK(stats.cycles > 0 && stats.end_cycle >= stats.start_cycle && (stats.pe_mask == 1 || stats.pe_mask == 2));
    CHECK(anvil_request_release(r) == ANVIL_OK);
  }
  for (i = 0; i < 4; ++i) CHECK(seen[i] == 1);
  CHECK(anvil_session_receive(s, 0.01, &r) == ANVIL_ERR_TIMEOUT);
  CHECK(strstr(anvil_last_error(), "queue timeout") != NULL);

  /* NULL handles; a closed device handle leaves its session's device open (anvil_rt.h). */
  CHECK(anvil_session_num_inputs(NULL, &n) == ANVIL_ERR_INVALID_ARGUMENT);
  CHECK(anvil_request_wait(NULL, 1.0, &state) == ANVIL_ERR_INVALID_ARGUMENT);
  CHECK(anvil_device_close(NULL) == ANVIL_ERR_INVALID_ARGUMENT);
  CHECK(anvil_device_close(dev) == ANVIL_OK);
  {
    anvil_tensor in = input(x[0]);
    anvil_test_conv_expected(x[0], want);
    memset(y, 0, sizeof y);
    CHECK(anvil_session_run(s, &in, 1, outputs, output_bytes, 1) == ANVIL_OK);
    CHECK(memcmp(y, want, kOut) == 0);
  }
  CHECK(anvil_session_destroy(s) == ANVIL_OK);
  free(image);
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("C API: all checks passed\n");
  return failures ? 1 : 0;
}
