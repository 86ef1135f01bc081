/* A small host application using the anvil runtime's C API: open a device, load a compiled
 * program, inspect its input and output, run every image of a raw float32 file (as numpy's
 * tofile writes it, one program batch after another) through the asynchronous queue, print the
 * class of each image.
 *
 * usage: classify_c PROGRAM IMAGES.f32 [DEVICE_SPEC]     (default spec: $ANVIL_DEVICES)
 * DEVICE_SPEC unix:PATH attaches to a device server (`anvil device serve --socket PATH`). */
#include <stdio.h>
#include <stdlib.h>

#include "anvil/runtime/anvil_rt.h"

static int fail(const char* what, anvil_status s) {
  fprintf(stderr, "classify_c: %s: %s: %s\n", what, anvil_status_name(s), anvil_last_error());
  return 1;
}

int main(int argc, char** argv) {
  anvil_device* dev = NULL;
  anvil_session* session = NULL;
  anvil_tensor_info in, out;
  anvil_session_options options;
  anvil_status s;
  FILE* f;
  float* images;
  int8_t* logits;
  long bytes;
  size_t per_request = 1, requests, r, d, i, c;
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: classify_c PROGRAM IMAGES.f32 [DEVICE_SPEC]\n");
    return 2;
  }
  if ((s = anvil_device_open(argc == 4 ? argv[3] : NULL, NULL, NULL, 0, &dev)) != ANVIL_OK) return fail("open", s);
  anvil_session_options_default(&options);
  options.queue_depth = 4;
  if ((s = anvil_session_create(dev, argv[1], &options, &session)) != ANVIL_OK) return fail("load", s);
  anvil_session_input_info(session, 0, &in);
  anvil_session_output_info(session, 0, &out);
  for (d = 0; d < in.rank; ++d) per_request *= (size_t)in.dims[d];

  f = fopen(argv[2], "rb");
  if (!f) {
    fprintf(stderr, "classify_c: cannot open %s\n", argv[2]);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  requests = (size_t)bytes / (per_request * sizeof(float));
  if (requests == 0 || (size_t)bytes != requests * per_request * sizeof(float)) {
    fprintf(stderr, "classify_c: %s holds %ld bytes, not a multiple of one batch (%zu floats)\n", argv[2], bytes, per_request);
    return 1;
  }
  images = malloc((size_t)bytes);
  logits = malloc(requests * out.bytes);
  if (fread(images, 1, (size_t)bytes, f) != (size_t)bytes) return 1;
  fclose(f);

  /* Submit every request (submit waits while the queue is full); each carries its index as context. */
  for (r = 0; r < requests; ++r) {
    anvil_tensor t;
    anvil_request* req;
    t.name = in.name;
    t.dtype = ANVIL_DTYPE_FLOAT32; /* quantized by the runtime with the input's scale and zero point */
    t.rank = in.rank;
    t.dims = in.dims;
    t.data = images + r * per_request;
    if ((s = anvil_session_submit(session, &t, 1, (void*)(images + r * per_request), &req)) != ANVIL_OK) return fail("submit", s);
    anvil_request_release(req); /* collected below with anvil_session_receive */
  }
  for (r = 0; r < requests; ++r) {
    anvil_request* req;
    void* ctx;
    size_t k;
    if ((s = anvil_session_receive(session, 60.0, &req)) != ANVIL_OK) return fail("receive", s);
    anvil_request_context(req, &ctx);
    k = (size_t)((float*)ctx - images) / per_request;
    if ((s = anvil_request_output(req, out.name, logits + k * out.bytes, out.bytes)) != ANVIL_OK) return fail("request", s);
    anvil_request_release(req);
  }
  for (r = 0; r < requests; ++r)
    for (i = 0; i < (size_t)out.dims[0]; ++i) {
      const size_t classes = out.bytes / (size_t)out.dims[0];
      const int8_t* row = logits + r * out.bytes + i * classes;
      size_t best = 0;
      for (c = 1; c < classes; ++c)
        if (row[c] > row[best]) best = c;
      printf("image %zu: class %zu (logit %g)\n", r * (size_t)out.dims[0] + i, best, (row[best] - out.zero_point) * out.scale);
    }
  anvil_session_destroy(session);
  anvil_device_close(dev);
  free(images);
  free(logits);
  return 0;
}
