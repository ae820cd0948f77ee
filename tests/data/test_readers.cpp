// data/readers: text classification CSV/TSV, AAN retrieval pairs, CIFAR-10 batches, idx files
// and vocabulary files, read from the fixtures in tests/fixtures/readers/ (written by
// make_fixtures.py there); every kind of malformed input names the file and the line or byte
// offset; and the real Fashion-MNIST files when Debian's dataset-fashion-mnist is installed.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/readers.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::data;
using namespace wavspa::test;
using wavspa::test::check_error;

namespace {

// The suite runs from the repository root.
const std::string kDir = "tests/fixtures/readers/";

// What a byte-level reader should produce for `s`: each byte + 1.
std::vector<int32_t> ids(const std::string& s) {
  std::vector<int32_t> out;
  for (unsigned char c : s) out.push_back((int32_t)c + 1);
  return out;
}


}  // namespace

TEST_CASE("reader: CSV with a header finds columns by name and parses quoted fields") {
  TokenDataset d = read_text_classification(kDir + "text_header.csv", 100);
  REQUIRE(d.size() == 4);
  CHECK(d.name == kDir + "text_header.csv");
  CHECK(d.vocab_size == 257);
  CHECK(d.seq_len == 100);
  CHECK(d.num_classes == 3);  // max label 2 + 1
  CHECK(d.labels == std::vector<int32_t>{1, 0, 2, 1});
  CHECK(d.inputs[0] == ids("Hello, world"));
  CHECK(d.inputs[1] == ids("She said \"hi\", then left"));
  CHECK(d.inputs[2] == ids("two\nlines"));
  CHECK(d.inputs[3] == ids("plain"));
  CHECK(d.inputs[0][0] == 'H' + 1);  // 73: byte + 1, 0 stays padding
  CHECK_FALSE(d.is_pair());
}

TEST_CASE("reader: header-less TSV, CRLF endings, UTF-8 bytes and truncation to max_len") {
  TokenDataset d = read_text_classification(kDir + "text_noheader.tsv", 10);
  REQUIRE(d.size() == 3);  // the blank line holds no record
  CHECK(d.labels == std::vector<int32_t>{0, 1, 3});
  CHECK(d.num_classes == 4);
  CHECK(d.seq_len == 10);
  CHECK(d.inputs[0] == ids("short"));  // no '\r' left over
  CHECK(d.inputs[1] == ids("the quick "));  // cut to 10 bytes
  CHECK(d.inputs[2] == std::vector<int32_t>{0xC3 + 1, 0xA9 + 1, 't' + 1, 0xC3 + 1, 0xA9 + 1});  // "été", bytes
  // A fixed num_classes wins over the labels seen.
  TextFileOptions opt;
  opt.num_classes = 5;
  CHECK(read_text_classification(kDir + "text_noheader.tsv", 10, opt).num_classes == 5);
  opt.num_classes = 3;  // label 3 does not fit
  check_error([&] { read_text_classification(kDir + "text_noheader.tsv", 10, opt); },
              {kDir + "text_noheader.tsv:4:", "label 3", "num_classes is 3"});
}

TEST_CASE("reader: IMDB-style CSV with words for labels and configured column names") {
  TextFileOptions opt;
  opt.label_column = "sentiment";
  opt.text_column = "review";
  TokenDataset d = read_text_classification(kDir + "imdb_posneg.csv", 4000, opt);
  REQUIRE(d.size() == 4);
  CHECK(d.labels == std::vector<int32_t>{1, 0, 1, 0});  // positive, negative, POS, neg
  CHECK(d.num_classes == 2);
  CHECK(d.inputs[0] == ids("Great movie, loved it"));
  CHECK(d.inputs[2] == ids("ok \"fine\""));
  // With the default names the header is not recognised; "review" is then not a label.
  check_error([] { read_text_classification(kDir + "imdb_posneg.csv", 4000); },
              {kDir + "imdb_posneg.csv:1:", "expected a label", "'review'"});
  // A header whose text column is missing.
  opt.text_column = "body";
  check_error([&] { read_text_classification(kDir + "imdb_posneg.csv", 4000, opt); },
              {kDir + "imdb_posneg.csv:1:", "no 'body' column", "text_column"});
}

TEST_CASE("reader: text classification rejects malformed files naming file:line") {
  check_error([] { read_text_classification(kDir + "bad_short.tsv", 50); },
              {kDir + "bad_short.tsv:3:", "expected 2 fields", "found 1"});
  check_error([] { read_text_classification(kDir + "bad_label.csv", 50); },
              {kDir + "bad_label.csv:3:", "expected a label", "'x1'"});
  check_error([] { read_text_classification(kDir + "bad_unterminated.csv", 50); },
              {kDir + "bad_unterminated.csv:3:", "never closed", "ends at line 4"});
  check_error([] { read_text_classification(kDir + "bad_quote.tsv", 50); },
              {kDir + "bad_quote.tsv:2:", "column 11", "quote inside an unquoted field"});
  // The same file read with quotes as ordinary bytes.
  TextFileOptions literal;
  literal.quoting = false;
  TokenDataset q = read_text_classification(kDir + "bad_quote.tsv", 50, literal);
  REQUIRE(q.size() == 2);
  CHECK(q.inputs[1] == ids("He said \"hi\""));
  check_error([] { read_text_classification(kDir + "missing.csv", 50); }, {"cannot open", "missing.csv"});
  check_error([] { read_text_classification(kDir + "text_header.csv", 0); }, {"max_len must be >= 1"});

  TempDir tmp("readers_text");
  const std::string dir = tmp.path;
  auto expect = [&](const std::string& name, const std::string& text, const std::vector<std::string>& frags) {
    write_file(dir + "/" + name, text);
    std::vector<std::string> all = frags;
    all.push_back(dir + "/" + name);
    check_error([&] { read_text_classification(dir + "/" + name, 50); }, all);
  };
  expect("empty.csv", "", {":1:", "empty"});
  expect("header_only.csv", "label,text\n", {"no examples after the header on line 1"});
  expect("one_field.csv", "1\n", {":1:", "at least 2 fields"});
  expect("extra.tsv", "1\ta\n0\tb\tc\n", {":2:", "expected 2 fields", "found 3"});
  expect("negative.csv", "-1,a\n", {":1:", "expected a label", "'-1'"});
  // One stray huge label would size the classifier from it (it used to ask for 64 GB).
  expect("huge_label.csv", "1,a\n999999999,b\n", {":2:", "label 999999999 is too large", "num_classes"});
  expect("junk_after_quote.csv", "1,\"abc\"def\n", {":1:", "column 8", "after a closing quote"});
  expect("data.dat", "1,a\n", {"extension", "TextFileOptions::delimiter"});
  // An explicit delimiter reads any name; a byte order mark is dropped.
  write_file(dir + "/bom.dat", "\xEF\xBB\xBFlabel,text\n1,a\n");
  TextFileOptions comma;
  comma.delimiter = Delimiter::kComma;
  TokenDataset bom = read_text_classification(dir + "/bom.dat", 50, comma);
  CHECK(bom.labels == std::vector<int32_t>{1});
  CHECK(bom.inputs[0] == ids("a"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("reader: AAN retrieval pairs as LRA reads them") {
  TokenDataset d = read_retrieval_pairs(kDir + "retrieval_aan.tsv", 12);
  REQUIRE(d.size() == 3);
  CHECK(d.is_pair());
  CHECK(d.vocab_size == 257);
  CHECK(d.num_classes == 2);
  CHECK(d.seq_len == 12);
  CHECK(d.labels == std::vector<int32_t>{1, 0, 1});  // "1", "0.0", "1.0"
  CHECK(d.inputs[0] == ids("We study par"));    // cut to 12
  CHECK(d.inputs2[0] == ids("Parsing is \""));
  CHECK(d.inputs[1] == ids("\"Quoted\" sta"));  // quotes are ordinary bytes (use_quote_delim=False)
  CHECK(d.inputs2[1] == ids("plain text"));
  CHECK(d.inputs[2] == ids("x"));
  CHECK(d.inputs2[2].empty());
  // Read as strict CSV, the quotes inside line 1's last field are an error.
  RetrievalOptions quoted;
  quoted.quoting = true;
  check_error([&] { read_retrieval_pairs(kDir + "retrieval_aan.tsv", 12, quoted); },
              {kDir + "retrieval_aan.tsv:1:", "quote inside an unquoted field"});

  check_error([] { read_retrieval_pairs(kDir + "bad_retrieval.tsv", 100); },
              {kDir + "bad_retrieval.tsv:2:", "expected 5 tab-separated fields", "found 4"});
  TempDir tmp("readers_retrieval");
  const std::string dir = tmp.path;
  write_file(dir + "/label.tsv", "1\ta\tb\tx\ty\n2\ta\tb\tx\ty\n");
  check_error([&] { read_retrieval_pairs(dir + "/label.tsv", 100); },
              {dir + "/label.tsv:2:", "expected the label 0 or 1", "'2'"});
  write_file(dir + "/label2.tsv", "yes\ta\tb\tx\ty\n");
  check_error([&] { read_retrieval_pairs(dir + "/label2.tsv", 100); }, {dir + "/label2.tsv:1:", "'yes'"});
  write_file(dir + "/empty.tsv", "");
  check_error([&] { read_retrieval_pairs(dir + "/empty.tsv", 100); }, {dir + "/empty.tsv:1:", "empty"});
  std::filesystem::remove_all(dir);
}

TEST_CASE("reader: CIFAR-10 batch in grayscale by TensorFlow's rule, and in RGB") {
  TokenDataset d = read_cifar10({kDir + "cifar_3.bin"});
  REQUIRE(d.size() == 3);
  CHECK(d.vocab_size == 256);
  CHECK(d.num_classes == 10);
  CHECK(d.seq_len == 1024);
  CHECK(d.labels == std::vector<int32_t>{3, 0, 9});
  // The corners of the colour cube, by hand: white 0.9999 * 255.5 = 255.47 -> 255; red
  // 0.2989 * 255.5 = 76.4 -> 76; green 149.98 -> 149; blue 29.1 -> 29.
  CHECK(std::vector<int32_t>(d.inputs[0].begin(), d.inputs[0].begin() + 5) == std::vector<int32_t>{255, 0, 76, 149, 29});
  // Every pixel against make_fixtures.py's float32 emulation of the same rule.
  std::ifstream f(kDir + "cifar_3_gray.txt");
  for (int64_t i = 0; i < 3; ++i) {
    std::string line;
    REQUIRE(std::getline(f, line));
    std::istringstream in(line);
    std::vector<int32_t> expected;
    for (int v; in >> v;) expected.push_back(v);
    REQUIRE(expected.size() == 1024);
    CHECK(d.inputs[i] == expected);
  }
  // RGB: each pixel's R, G, B in turn, straight from the planes of the file.
  TokenDataset rgb = read_cifar10({kDir + "cifar_3.bin"}, /*grayscale=*/false);
  CHECK(rgb.seq_len == 3072);
  const std::string bytes = read_file(kDir + "cifar_3.bin");
  REQUIRE(bytes.size() == 3 * 3073);
  for (size_t i = 0; i < 3; ++i) {
    const auto* rec = reinterpret_cast<const uint8_t*>(bytes.data()) + i * 3073 + 1;
    std::vector<int32_t> expected;
    for (size_t p = 0; p < 1024; ++p)
      for (size_t c = 0; c < 3; ++c) expected.push_back(rec[c * 1024 + p]);
    CHECK(rgb.inputs[i] == expected);
  }
  // Several files are appended in order.
  TokenDataset two = read_cifar10({kDir + "cifar_3.bin", kDir + "cifar_3.bin"});
  CHECK(two.size() == 6);
  CHECK(two.inputs[4] == d.inputs[1]);
  CHECK(two.labels[5] == 9);
}

TEST_CASE("reader: CIFAR-10 malformed files name the byte offset") {
  check_error([] { read_cifar10({kDir + "bad_size.bin"}); },
              {kDir + "bad_size.bin", "6246 bytes", "byte offset 6146", "only 100 bytes", "expected 3073"});
  check_error([] { read_cifar10({kDir + "bad_label.bin"}); },
              {kDir + "bad_label.bin", "byte offset 3073", "record 1", "0..9", "found 10"});
  check_error([] { read_cifar10({kDir + "cifar_3.bin", kDir + "missing.bin"}); }, {"cannot open", "missing.bin"});
  check_error([] { read_cifar10({}); }, {"no files"});
  TempDir tmp("readers_cifar");
  const std::string dir = tmp.path;
  write_file(dir + "/empty.bin", "");
  check_error([&] { read_cifar10({dir + "/empty.bin"}); }, {dir + "/empty.bin", "empty"});
  std::filesystem::remove_all(dir);
}

TEST_CASE("reader: idx arrays, plain and gzipped, and an idx dataset") {
  IdxArray images = read_idx(kDir + "tiny-images-idx3-ubyte");
  CHECK(images.dims == std::vector<int64_t>{5, 2, 3});
  REQUIRE(images.data.size() == 30);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 6; ++j) CHECK(images.data[i * 6 + j] == (i * 40 + j * 7) % 256);
  IdxArray labels = read_idx(kDir + "tiny-labels-idx1-ubyte.gz");
  CHECK(labels.dims == std::vector<int64_t>{5});
  CHECK(labels.data == std::vector<uint8_t>{7, 2, 1, 0, 9});

  TokenDataset d = read_idx_dataset(kDir + "tiny-images-idx3-ubyte", kDir + "tiny-labels-idx1-ubyte.gz");
  REQUIRE(d.size() == 5);
  CHECK(d.vocab_size == 256);
  CHECK(d.num_classes == 10);
  CHECK(d.seq_len == 6);
  CHECK(d.labels == std::vector<int32_t>{7, 2, 1, 0, 9});
  CHECK(d.inputs[1] == std::vector<int32_t>{40, 47, 54, 61, 68, 75});  // pixel values, no offset
  TokenDataset first2 = read_idx_dataset(kDir + "tiny-images-idx3-ubyte", kDir + "tiny-labels-idx1-ubyte.gz", 2);
  CHECK(first2.size() == 2);
  CHECK(first2.labels == std::vector<int32_t>{7, 2});
  CHECK(read_idx_dataset(kDir + "tiny-images-idx3-ubyte", kDir + "tiny-labels-idx1-ubyte.gz", 99).size() == 5);
}

TEST_CASE("reader: malformed idx files name the byte offset, expected and found") {
  check_error([] { read_idx(kDir + "bad_truncated-idx3-ubyte"); },
              {kDir + "bad_truncated-idx3-ubyte", "truncated", "30 data bytes", "byte offset 16 to 46",
               "ends at byte offset 36"});
  check_error([] { read_idx(kDir + "bad_magic-idx1-ubyte"); },
              {kDir + "bad_magic-idx1-ubyte", "byte offset 0", "0x00000801", "found 0x01080000"});
  check_error([] { read_idx(kDir + "bad_cut-idx3-ubyte.gz"); }, {kDir + "bad_cut-idx3-ubyte.gz", "byte offset"});
  check_error([] { read_idx_dataset(kDir + "tiny-images-idx3-ubyte", kDir + "bad_label-idx1-ubyte"); },
              {kDir + "bad_label-idx1-ubyte", "byte offset 10", "label 2", "found 12"});
  // Images and labels swapped, and files that disagree.
  check_error([] { read_idx_dataset(kDir + "tiny-labels-idx1-ubyte.gz", kDir + "tiny-images-idx3-ubyte"); },
              {"tiny-labels-idx1-ubyte.gz", "expected an image file with 3 dims"});
  check_error([] { read_idx(kDir + "missing-idx3-ubyte"); }, {"cannot open", "missing-idx3-ubyte"});

  TempDir tmp("readers_idx");
  const std::string dir = tmp.path;
  auto expect = [&](const std::string& name, const std::string& bytes, const std::vector<std::string>& frags) {
    write_file(dir + "/" + name, bytes);
    std::vector<std::string> all = frags;
    all.push_back(dir + "/" + name);
    check_error([&] { read_idx(dir + "/" + name); }, all);
  };
  using namespace std::string_literals;
  expect("short", "\0\0"s, {"truncated", "4-byte idx magic", "found 2 bytes"});
  expect("float", "\0\0\x0D\x01\0\0\0\x01"s, {"byte offset 2", "type code 0x08", "found 0x0D"});
  expect("dims0", "\0\0\x08\x00"s, {"byte offset 3", "1 to 4 dimensions", "found 0"});
  expect("dims9", "\0\0\x08\x09"s, {"byte offset 3", "found 9"});
  expect("nosizes", "\0\0\x08\x03\0\0\0\x05"s, {"truncated", "3 4-byte sizes", "ends at byte offset 8"});
  expect("zero", "\0\0\x08\x01\0\0\0\0"s, {"byte offset 4", "size 0"});
  expect("huge", "\0\0\x08\x03\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\0\0\0\x01"s, {"byte offset 8", "4 GiB"});
  expect("extra", "\0\0\x08\x01\0\0\0\x02\x05\x06\x07"s, {"end of the file at byte offset 10", "found more"});
  // Counts that differ.
  write_file(dir + "/labels3", "\0\0\x08\x01\0\0\0\x03\x01\x02\x03"s);
  check_error([&] { read_idx_dataset(kDir + "tiny-images-idx3-ubyte", dir + "/labels3"); },
              {"holds 5 images", "holds 3 labels"});
  std::filesystem::remove_all(dir);
}

TEST_CASE("reader: vocabulary files round trip and reject bad tokens") {
  TempDir tmp("readers_vocab");
  const std::string dir = tmp.path;
  std::vector<std::string> vocab{"<pad>", "the", "a b", "é", "]"};
  write_vocab(dir + "/vocab.txt", vocab);
  CHECK(read_vocab(dir + "/vocab.txt") == vocab);
  write_file(dir + "/crlf.txt", "x\r\ny\r\nz");  // "\r\n" and no final newline
  CHECK(read_vocab(dir + "/crlf.txt") == std::vector<std::string>{"x", "y", "z"});
  write_file(dir + "/dup.txt", "x\ny\nz\ny\n");
  check_error([&] { read_vocab(dir + "/dup.txt"); }, {dir + "/dup.txt:4:", "duplicate token 'y'", "first on line 2"});
  write_file(dir + "/hole.txt", "x\n\ny\n");
  check_error([&] { read_vocab(dir + "/hole.txt"); }, {dir + "/hole.txt:2:", "empty token"});
  write_file(dir + "/empty.txt", "");
  check_error([&] { read_vocab(dir + "/empty.txt"); }, {dir + "/empty.txt:1:", "empty"});
  check_error([&] { write_vocab(dir + "/w.txt", {"a", "b", "a"}); }, {"token 2", "repeats token 0"});
  check_error([&] { write_vocab(dir + "/w.txt", {"a", ""}); }, {"token 1 is empty"});
  check_error([&] { write_vocab(dir + "/w.txt", {"a\nb"}); }, {"line break"});
  check_error([&] { write_vocab(dir + "/w.txt", {}); }, {"no tokens"});
  check_error([&] { read_vocab(dir + "/missing.txt"); }, {"cannot open", "missing.txt"});
  std::filesystem::remove_all(dir);
}

TEST_CASE("reader: the real Fashion-MNIST files, when installed") {
  const std::string dir = fashion_mnist_dir();
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz")) {
    MESSAGE(dir, " is not installed (Debian package dataset-fashion-mnist); skipping the real-data checks");
    return;
  }
  TokenDataset train = read_idx_dataset(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  TokenDataset test = read_idx_dataset(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.seq_len == 784);
  CHECK(test.seq_len == 784);
  std::vector<int64_t> train_count(10, 0), test_count(10, 0);
  for (int32_t l : train.labels) ++train_count.at(l);
  for (int32_t l : test.labels) ++test_count.at(l);
  CHECK(train_count == std::vector<int64_t>(10, 6000));
  CHECK(test_count == std::vector<int64_t>(10, 1000));
  bool all_784 = true;
  int32_t max_pixel = 0;
  for (const auto& x : train.inputs) {
    all_784 = all_784 && x.size() == 784;
    for (int32_t v : x) max_pixel = std::max(max_pixel, v);
  }
  CHECK(all_784);
  CHECK(max_pixel == 255);
}
