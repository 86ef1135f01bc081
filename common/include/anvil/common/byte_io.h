#pragma once
/// Byte streams for anvil's binary formats (the program container, isa/program.h, and the host
/// segments' integer graphs, reference/int8_graph.h): fixed-size values as their host (little
/// endian) bytes, strings as a u32 length and the bytes. Each format keeps its own layout and its
/// own error message for a short read.
#include <cstdint>
#include <cstring>
#include <string>

namespace anvil {

class ByteWriter {
 public:
  template <typename T>
  void put(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_str(const std::string& s) {
    put<uint32_t>(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

/// Reads bytes [begin, end) of `s`. A read past `end` calls truncated(), which a format overrides
/// to throw its own anvil::Error (it must not return).
class ByteReader {
 public:
  ByteReader(const std::string& s, size_t begin, size_t end) : s_(s), pos_(begin), end_(end) {}
  virtual ~ByteReader() = default;
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, s_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string get_str() {
    const uint32_t n = get<uint32_t>();
    need(n);
    std::string v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  /// Copies the next n bytes to dst.
  void get_bytes(void* dst, size_t n) {
    need(n);
    std::memcpy(dst, s_.data() + pos_, n);
    pos_ += n;
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return end_ - pos_; }
  bool done() const { return pos_ == end_; }

 protected:
  [[noreturn]] virtual void truncated() const = 0;
  void need(size_t n) const {
    if (remaining() < n) truncated();
  }

 private:
  const std::string& s_;
  size_t pos_, end_;
};

}  // namespace anvil
