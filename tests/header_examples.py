#!/usr/bin/env python3
"""Turns the usage example that opens every public header into a compiled, run test.

    python3 tests/header_examples.py build/gen/header_examples.cpp wavspa.h core/tensor.h ...

The Makefile passes its PUBLIC_HEADERS. For each header the script reads the opening comment
(the `//` lines at the top of the file) and takes as its example every block of indented
lines (`//   code`, three spaces or more after the slashes) that follows an empty comment
line. Indented lines that continue a sentence ("A run folder holds:" and a table under it)
are prose, not code: they follow a line of text, not an empty one.

Each example becomes a function `void example_<path>()` (core/tensor.h gives
example_core_tensor_h) whose lines carry `#line` directives pointing back at the header, so a
compile error names the header's own line. The generated file ends with the registry that
tests/header_examples.h declares and tests/test_header_examples.cpp checks.

A marker in the opening comment says what the test may not do with a header:
    (not run: REASON)        compiled, never run (needs a GPU, data on disk, a long run)
    (not compiled: REASON)   shown to the reader only
    (no example: REASON)     nothing to show (an internal helper, a plain list of types)
A header with neither an example nor a marker still gets an entry, of kind Missing, and the
test fails naming it (the build does not stop: the failure belongs in the test report).

CONTEXT supplies what an example fragment assumes without writing it (an `x` of the right
shape, a `model`, a file the example reads), inserted before the example's first line.
Keep each entry short: what an example needs to be read alone belongs in the example.
"""

import os
import re
import sys

# What the train/ examples assume: a task's data on disk (a small ListOps set, as gen-data
# writes it) and a run config (run.json) that trains a small model for a few steps.
TINY_RUN = """
auto [train_split, val_split, test_split] =
    data::generate_listops_dataset(0, 48, 16, 16, {.min_length = 10, .max_length = 40});
std::filesystem::create_directories("data");
data::write_listops_tsv("data/basic_train.tsv", train_split);
data::write_listops_tsv("data/basic_val.tsv", val_split);
data::write_listops_tsv("data/basic_test.tsv", test_split);
example_write_file("run.json", R"({"task": "listops", "data": "data", "max_len": 48, "steps": 4,
  "batch_size": 8, "eval_every": 2, "log_every": 2, "prefetch": 0,
  "model": {"emb_dim": 16, "num_layers": 1, "num_heads": 1, "qkv_dim": 16, "mlp_dim": 16}})");"""

# Declarations the example of a header assumes, keyed by header path. The example runs in a
# fresh temporary folder (its working folder), so a file it reads is written or copied there
# first: example_write_file, example_copy_from_source and example_source_path (the source
# tree's copy of a file) come from tests/header_examples.h.
CONTEXT = {
    "core/error.h": """
Tensor a = zeros({2, 3});
int64_t offset = 0;""",
    "backends/backend.h": """
Tensor x = randn({2, 3});""",
    "core/runtime.h": """
const int threads = cpu_threads();
const MatmulPrecision precision = matmul_precision();""",
    "core/files.h": """
example_write_file("configs/run.json", "{}");
std::string dir = ".", csv = "step,loss\\n0,2.3\\n";""",
    "core/json_fields.h": """
example_write_file("model.json", R"({"emb_dim": 64, "pooling": "mean"})");
std::string path = "model.json";
struct { int64_t emb_dim = 128; std::string pooling = "cls"; } c;""",
    "core/profiler.h": """
auto model = std::make_shared<nn::Linear>(8, 4);
Tensor x = randn({16, 8}), y = randint(0, 4, {16});""",
    "autograd/function.h": """
Tensor a = randn({3}).requires_grad_(), b = randn({3}).requires_grad_();""",
    "autograd/grad_mode.h": """
Tensor w = randn({3}).requires_grad_();
sum(w * w).backward();
double lr = 0.1;""",
    "autograd/gradcheck.h": """
#define CHECK_MESSAGE(cond, msg) WAVSPA_CHECK(cond, msg)""",
    "autograd/graph_dump.h": """
auto model = std::make_shared<nn::Linear>(8, 4);
Tensor x = randn({16, 8}), y = randint(0, 4, {16});""",
    "ops/attention.h": """
Tensor q = randn({2, 4, 12, 8}), k = randn({2, 4, 12, 8}), v = randn({2, 4, 12, 8});
Tensor mask = ones({2, 12}), qkv = randn({2, 12, 3 * 4 * 8});
int64_t heads = 4;""",
    "ops/elementwise.h": """
Tensor x = randn({2, 3}), w = randn({3}), b = randn({3});
Tensor s = randn({2, 3}), mask = gt(randn({2, 3}), 0);""",
    "ops/linalg.h": """
Tensor x = randn({2, 5, 4}), w = randn({4, 3}), q = randn({2, 5, 4}), k = randn({2, 6, 4});
Tensor weight = randn({3, 4}), bias = randn({3});""",
    "ops/nn.h": """
const int64_t D = 8;
Tensor scores = randn({4, 5}), x = randn({4, D}), gamma = ones({D}), beta = zeros({D});
Tensor logits = randn({4, 10}), labels = randint(0, 10, {4});
Tensor w1 = randn({16, D}), b1 = randn({16});""",
    "ops/optim.h": """
Tensor p = randn({3}), m = zeros({3}), v = zeros({3});
p.set_grad(randn({3}));
double lr = 1e-3, wd = 0.01, b1 = 0.9, b2 = 0.999;
int t = 1;""",
    "ops/reduce.h": """
Tensor x = randn({2, 3, 4}), logits = randn({4, 10}), ids = randint(0, 3, {4, 5});""",
    "ops/shape.h": """
Tensor a = randn({2, 3}), b = randn({2, 4}), x = randn({2, 6});
Tensor idx = from_vector(std::vector<int64_t>{1, 0});""",
    "ops/graph.h": """
const int64_t B = 4, D = 8;
Tensor w = randn({D, D}, kFloat32, Device::cuda()), b = zeros({D}, kFloat32, Device::cuda());
std::vector<Tensor> batches = {randn({B, D}), randn({B, D})};""",
    "ops/wavelet.h": """
Tensor x = randn({2, 64, 4});""",
    "ops/wavelet_primitives.h": """
Tensor x = randn({2, 16, 3}), w = randn({2, 4, 3});  // (nf, F, C): a low and a high pass
const int64_t axis = 1, F = 4, L = 9;""",
    "nn/attention.h": """
Tensor x = randn({2, 10, 128}), key_mask = ones({2, 10});""",
    "nn/checkpoint.h": """
nn::Linear model(3, 2);""",
    "nn/init.h": """
auto linear = std::make_shared<nn::Linear>(4, 3);
auto emb = std::make_shared<nn::Embedding>(10, 4);""",
    "nn/layers.h": """
Tensor x = randn({2, 16});""",
    "nn/optim.h": """
// The loss of one micro-batch: a least-squares fit of y = x w^T + b.
auto micro_batch = [](int64_t step, int k) { return randn({8, 3}, kFloat32, Device::cpu(), nullptr) + double(step % 2 + k); };
auto loss_on = [](const Tensor& w, const Tensor& b, const Tensor& x) { return mean(pow(matmul(x, w.t()) + b - 1.0, 2.0)); };""",
    "nn/schedule.h": """
Tensor w = zeros({1}).requires_grad_();
nn::SGD opt({w}, {.lr = 0.05});""",
    "nn/train_state.h": """
nn::Linear model(3, 2);
nn::AdamW opt(model.parameters(), {.lr = 1e-3});
std::string config_json = "{}";
std::filesystem::create_directories("runs/x");""",
    "models/blocks.h": """
Tensor x = randn({2, 10, 128}), key_mask = ones({2, 10});""",
    "models/classifier.h": """
Tensor ids = randint(1, 20, {2, 128});""",
    "models/config.h": """
std::string text = R"({"architecture": "transformer", "vocab_size": 20, "num_classes": 10, "max_len": 64})";""",
    "data/listops.h": """
std::filesystem::create_directories("out");""",
    "data/png.h": """
std::filesystem::create_directories("out");""",
    "models/factory.h": """
example_copy_from_source("configs");""",
    # Two 28x28 images in idx files of its own (gzopen reads them unpacked too), so the
    # example runs where the Fashion-MNIST package is not installed (the GPU machine).
    "data/dataset.h": """
auto write_idx = [](const std::string& path, std::vector<unsigned char> head, size_t bytes) {
  head.resize(head.size() + bytes, 7);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(head.data()), (std::streamsize)head.size());
};
std::string images = "images.idx", labels = "labels.idx";
write_idx(images, {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28}, 2 * 28 * 28);
write_idx(labels, {0, 0, 8, 1, 0, 0, 0, 2}, 2);
size_t i = 0;""",
    "data/loader.h": """
Generator gen(1);
data::ListOpsSplit split;
for (int i = 0; i < 64; ++i) {
  split.sources.push_back(data::generate_listops(gen, {.min_length = 10, .max_length = 40}));
  split.targets.push_back(data::evaluate_listops(split.sources.back()));
}
struct {  // a bag of embeddings: a model cheap enough for 2000 tokens
  nn::Embedding emb{data::listops_vocab_size(), 8};
  nn::Linear head{8, 10};
  Tensor forward(const Tensor& ids) { return head.forward(mean(emb.forward(ids), {1})); }
} model;""",
    "train/evaluation.h": TINY_RUN + """
train::RunConfig config = train::RunConfig::from_file("run.json");
train::Setup s(config);
train::RunFolder folder("runs/x");
train::RunState st = train::start_run(s, folder, /*resume=*/false);
train::Console console;
int64_t epoch = 0, batches_per_epoch = 1;
train::RunStatus status = train::RunStatus::kFinished;""",
    "train/logging.h": """
std::string dir = ".";
std::vector<train::MetricRow> rows;
double loss = 2.3, lr = 1e-3, window_seconds = 1, elapsed_s = 1;
int64_t correct = 3, scored = 8, positions = 8, step = 10, epoch = 0;""",
    "train/plots.h": """
std::filesystem::create_directories("runs/x");
std::vector<double> steps = {0, 1, 2}, losses = {2.3, 1.9, 1.5}, eval_steps = {2}, val_losses = {1.7};
std::vector<train::Chart> panels(4, train::Chart{"filter", "tap", "value"});""",
    "train/run_state.h": TINY_RUN + """
train::RunConfig config = train::RunConfig::from_file("run.json");
bool resume = false;""",
    "train/tasks.h": TINY_RUN + """
train::RunConfig config = train::RunConfig::from_file("run.json");""",
    "train/trainer.h": TINY_RUN,
}

# Lines after the example: what undoes its context (a macro borrowed from doctest, a process-wide
# setting the example changes and the rest of the test suite must not see).
CLOSE_CONTEXT = {
    "autograd/gradcheck.h": "#undef CHECK_MESSAGE",
    "core/runtime.h": "set_cpu_threads(threads);\nset_matmul_precision(precision);",
}

MARKER = re.compile(r"\((not run|not compiled|no example):\s*([^)]*)\)")
KINDS = {"not run": "CompileOnly", "not compiled": "NotCompiled", "no example": "NoExample"}
EXAMPLE_LINE = re.compile(r"^//   ")  # three spaces or more after the slashes


def opening_comment(lines):
    """The (line number, text) of the `//` lines that open the file, numbered from 1."""
    comment = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith("//"):
            break
        comment.append((number, line.rstrip("\n")))
    return comment


def example_blocks(comment):
    """Each block of indented lines that follows an empty comment line: [(first line, [code])]."""
    blocks = []
    previous_empty = False
    current = None
    for number, text in comment:
        if EXAMPLE_LINE.match(text):
            if current is None and previous_empty:
                current = (number, [])
                blocks.append(current)
            if current is not None:
                current[1].append(text[5:])  # drop "//   "
        else:
            current = None
        previous_empty = text.strip() == "//"
    return blocks


def function_name(header):
    return "example_" + re.sub(r"[^A-Za-z0-9]", "_", header)


def c_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def describe(header):
    """What the registry needs to know of one header: kind, reason, blocks."""
    with open(header, encoding="utf-8") as f:
        comment = opening_comment(f.readlines())
    prose = " ".join(text[2:].strip() for _, text in comment)
    marker = MARKER.search(prose)
    blocks = example_blocks(comment)
    if marker:
        kind, reason = KINDS[marker.group(1)], marker.group(2).strip()
        if kind == "NoExample" and blocks:
            sys.exit(f"{header}: says (no example: ...) but its opening comment has an example")
        if kind in ("CompileOnly", "NotCompiled") and not blocks:
            sys.exit(f"{header}: says ({marker.group(1)}: ...) but its opening comment has no example")
    elif blocks:
        kind, reason = "Run", ""
    else:
        kind = "Missing"
        reason = ("no usage example in the opening comment (indented `//   code` lines after an "
                  "empty `//` line) and no marker: (not run: ...), (not compiled: ...) or (no example: ...)")
    return kind, reason, blocks


def generate(out_path, headers):
    body = []  # the generated lines

    def emit(text=""):
        body.extend(text.split("\n"))

    def resync():
        # Back to this file's own line numbers after a stretch marked as the header's.
        emit(f'#line {len(body) + 2} "{out_path}"')

    emit("// Generated by tests/header_examples.py from the opening comments of the public headers.")
    emit("// Do not edit: change the header's example (or the script's CONTEXT) and rebuild.")
    emit('#include "wavspa.h"')
    for header in headers:
        emit(f'#include "{header}"')
    emit('#include "tests/header_examples.h"')
    emit()
    emit("#include <filesystem>")
    emit("#include <fstream>")
    emit("#include <iostream>")
    emit()
    emit("// Examples show values they do not go on to use.")
    for warning in ("unused-variable", "unused-but-set-variable", "unused-value", "unused-result",
                    "unused-local-typedefs"):
        emit(f'#pragma GCC diagnostic ignored "-W{warning}"')
    emit()
    emit("using namespace wavspa;")
    emit("using namespace wavspa::test;")
    emit()
    emit("namespace {")
    entries = []
    for header in headers:
        kind, reason, blocks = describe(header)
        function = function_name(header)
        compiled = kind in ("Run", "CompileOnly")
        entries.append((header, function if compiled else None, kind, reason, len(blocks)))
        if not compiled:
            continue
        emit()
        emit(f"// {header}" + (f" (not run: {reason})" if kind == "CompileOnly" else ""))
        emit(f"void {function}() {{")
        context = CONTEXT.get(header, "").strip("\n")
        if context:
            emit("  // context (tests/header_examples.py)")
            for line in context.split("\n"):
                emit("  " + line)
        for first, code in blocks:
            emit(f'#line {first} "{header}"')
            for line in code:
                emit("  " + line)
            resync()
        if header in CLOSE_CONTEXT:
            for line in CLOSE_CONTEXT[header].split("\n"):
                emit("  " + line)
        emit("}")
    emit("}  // namespace")
    emit()
    emit("namespace wavspa::test {")
    emit()
    emit("const std::vector<HeaderExample>& header_examples() {")
    emit("  static const std::vector<HeaderExample> examples = {")
    for header, function, kind, reason, nblocks in entries:
        fn = function if function else "nullptr"
        emit(f"      {{{c_string(header)}, {c_string(function_name(header))}, {fn}, ExampleKind::{kind}, "
             f"{c_string(reason)}, {nblocks}}},")
    emit("  };")
    emit("  return examples;")
    emit("}")
    emit()
    emit("}  // namespace wavspa::test")

    text = "\n".join(body) + "\n"
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out_path)  # a make interrupted here leaves no half-written file


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: header_examples.py OUT.cpp HEADER...")
    out_path, headers = sys.argv[1], sorted(set(sys.argv[2:]))
    generate(out_path, headers)


if __name__ == "__main__":
    main()
