/// anvil ref MODEL.onnx --input-dir D -o OUTDIR
/// Runs a model on the reference executor. Inputs are ONNX TensorProto files (input_0.pb,
/// input_1.pb, ... in graph input order, as in the ONNX backend test suite) or .npy files named
/// after the graph inputs (NAME.npy); outputs are written in the same format (output_K.pb or NAME.npy).
/// In a .npy file name every character of NAME other than a letter, digit, '.', '-' or '_' is '_'
/// (exporters name values like "/blocks.0/att/Add_output_0").
/// A sequence or optional input (as the graph declares it) is read from input_K.pb holding an ONNX
/// SequenceProto / OptionalProto, and such outputs are written the same way: .npy holds only tensors.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <map>
#include <vector>

#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "anvil/reference/executor.h"
#include "cli_common.h"

namespace anvil::cli {
namespace fs = std::filesystem;

namespace {

/// NAME.npy for a graph value's name: characters that are not portable in a file name become '_'.
std::string npy_file_name(const std::string& name) {
  std::string f = name;
  for (char& c : f)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  return f + ".npy";
}

/// The .npy file of each name in `names`; two names that map to one file are an error naming both.
std::vector<std::string> npy_file_names(const std::vector<std::string>& names, const std::string& what) {
  std::map<std::string, std::string> taken;  // file -> the name that took it
  std::vector<std::string> files;
  for (const std::string& name : names) {
    const std::string f = npy_file_name(name);
    auto [it, fresh] = taken.emplace(f, name);
    if (!fresh)
      fail(ErrorCode::kInvalidArgument, what + " '" + it->second + "' and '" + name + "' would both be " + f +
                                            ": use .pb files (input_K.pb / output_K.pb)");
    files.push_back(f);
  }
  return files;
}

}  // namespace

void register_ref(CLI::App& app) {
  struct Opts {
    std::string model, input_dir, out_dir;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("ref", "run a model on the reference executor (ONNX .pb or .npy tensors)");
  cmd->add_option("model", o->model, "ONNX model")->required();
  cmd->add_option("--input-dir", o->input_dir, "folder of input_K.pb or NAME.npy files (in NAME, characters other than letters, digits, . - _ are _)")->required();
  cmd->add_option("-o,--output-dir", o->out_dir, "folder to write the outputs to (created if missing)")
      ->required()
      ->check(writable_output_dir());
  cmd->callback([o] {
    const onnx::ModelProto model = load_onnx(o->model);
    const ref::Executor exec = ref::Executor::create(model).value();
    if (!fs::is_directory(o->input_dir)) fail(ErrorCode::kNotFound, o->input_dir + ": no such directory");
    std::map<std::string, const onnx::TypeProto*> declared;
    for (const auto& vi : model.graph().input()) declared[vi.name()] = &vi.type();
    ValueMap inputs;
    bool pb = false;
    const std::vector<std::string> npy_in = npy_file_names(exec.input_names(), "graph inputs");
    for (size_t i = 0; i < exec.input_names().size(); ++i) {
      const std::string& name = exec.input_names()[i];
      const std::string pb_path = o->input_dir + "/input_" + std::to_string(i) + ".pb";
      const std::string npy_path = o->input_dir + "/" + npy_in[i];
      const ValueKind kind = value_kind_of(*declared.at(name), "graph input '" + name + "'");
      if (fs::exists(pb_path)) {
        inputs[name] = read_value_pb(pb_path, kind);
        pb = true;
      } else if (kind != ValueKind::kTensor) {
        fail(ErrorCode::kNotFound, o->input_dir + ": no " + fs::path(pb_path).filename().string() + " for input '" +
                                       name + "' (type " + value_kind_name(kind) +
                                       "): sequences and optionals need .pb files (SequenceProto / OptionalProto), "
                                       ".npy holds only tensors");
      } else if (fs::exists(npy_path)) {
        inputs[name] = read_npy(npy_path);
      } else {
        fail(ErrorCode::kNotFound, o->input_dir + ": no " + fs::path(pb_path).filename().string() + " or " +
                                       fs::path(npy_path).filename().string() + " for input '" + name + "'");
      }
    }
    const ValueMap outputs = exec.run_values(inputs).value();
    const std::vector<std::string> npy_out = pb ? std::vector<std::string>{} : npy_file_names(exec.output_names(), "graph outputs");
    std::error_code ec;
    fs::create_directories(o->out_dir, ec);  // checked when parsed; this catches what can change since
    if (ec) fail(ErrorCode::kInvalidArgument, o->out_dir + ": cannot create the output folder (" + ec.message() + ")");
    for (size_t k = 0; k < exec.output_names().size(); ++k) {
      const std::string& name = exec.output_names()[k];
      const Value& v = outputs.at(name);
      const std::string path = pb ? o->out_dir + "/output_" + std::to_string(k) + ".pb" : o->out_dir + "/" + npy_out[k];
      if (pb) write_value_pb(path, v, name);
      else write_npy(path, v.tensor());  // no .pb input, so no sequence or optional either
      std::cout << name << " " << v.describe() << " -> " << path << '\n';
    }
  });
}

}  // namespace anvil::cli
