// Readers for the Long Range Arena data a user brings: byte-level text classification (IMDB,
// LRA "text"), document-pair retrieval (ACL Anthology Network, LRA "retrieval"), CIFAR-10
// binary batches (LRA "image") and MNIST / Fashion-MNIST idx files. Each returns a
// TokenDataset (data/dataset.h) that has passed validate(). (not run: reads the user's files)
//
//   using namespace wavspa;
//   data::TokenDataset imdb = data::read_text_classification("imdb_train.csv", 4000);
//   imdb.inputs[0];                         // bytes of the first review + 1 (0 = padding)
//   data::TokenDataset aan = data::read_retrieval_pairs("new_aan_pairs.train.tsv", 4000);
//   data::TokenDataset img = data::read_cifar10({"data_batch_1.bin", "data_batch_2.bin"});
//   std::string dir = data::fashion_mnist_dir();
//   data::TokenDataset fm = data::read_idx_dataset(dir + "/train-images-idx3-ubyte.gz",
//                                                  dir + "/train-labels-idx1-ubyte.gz");
//
// Malformed input is a wavspa::Error that names the file, the place (path:line for text
// files, a byte offset for binary files) and what was expected against what was found. No
// reader skips a bad record quietly. The one thing skipped is a line with no characters at
// all, since it holds no data (libcsv and Python's csv.DictReader skip it too).
//
// Every reader opens its file through zlib's gzopen, so "x.tsv.gz" reads like "x.tsv".
// For a gzipped binary file, byte offsets count the uncompressed bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace wavspa::data {

// ---- byte-level text classification -------------------------------------------------------

enum class Delimiter {
  kAuto,   // from the extension, ignoring a final ".gz": .csv = comma, .tsv and .txt = tab
  kComma,
  kTab,
};

struct TextFileOptions {
  Delimiter delimiter = Delimiter::kAuto;
  // If the first record has a field equal to label_column (ASCII case ignored), it is a header
  // and both columns are looked up by name. Otherwise column 0 is the label, column 1 the text.
  std::string label_column = "label";
  std::string text_column = "text";
  // 0: max label + 1 (at least 2 when the labels are words). Otherwise fixed, and a label
  // >= num_classes is an error.
  int64_t num_classes = 0;
  // true: RFC 4180 quoting, read by libcsv in strict mode: a field may be wrapped in double
  // quotes (and then hold delimiters, newlines and doubled "" quotes), but a quote inside an
  // unquoted field is an error. false: quotes are ordinary bytes and each line (less its
  // "\n" or "\r\n") is a record split at every delimiter, as tf.data's CSV reader does with
  // use_quote_delim=False.
  bool quoting = true;
};

// One example per record: a label and a text. Labels are integers >= 0 or the words
// pos/positive (1) and neg/negative (0), any case, as common IMDB CSVs write them. Token ids
// are the text's bytes + 1 (vocab_size 257, id 0 = padding), as tfds's ByteTextEncoder gives
// LRA; no UTF-8 decoding. Each text is cut to max_len bytes; seq_len = max_len. LRA's text
// task uses max_len 1000 in its configs (base_tc_config.py) and 4000 in the paper; pass the one
// you compare with. Every record must have as many fields as the first one. A UTF-8 byte
// order mark at the start of the file is dropped.
// Errors (path:line, the line where the record starts): a record with a different number of
// fields, a label that is not a class, a stray or unterminated quote, an empty file, a file
// with a header and no examples, a missing column name.
TokenDataset read_text_classification(const std::string& path, int64_t max_len,
                                      const TextFileOptions& options = {});

// ---- retrieval pairs ----------------------------------------------------------------------

struct RetrievalOptions {
  // LRA reads its AAN files with use_quote_delim=False: quotes are ordinary bytes there.
  // true: read them as TextFileOptions::quoting = true does.
  bool quoting = false;
};

// LRA's AAN files (new_aan_pairs.{train,eval,test}.tsv): tab-separated, no header, each
// record exactly `label, id1, id2, text1, text2`. The label is a number ("1", "0.0", ...)
// that must equal 0 or 1. inputs = bytes of text1 + 1, inputs2 = bytes of text2 + 1, each cut
// to max_len (LRA: 4000); vocab_size 257, num_classes 2, seq_len = max_len. The ids are not
// kept. Errors name path:line.
TokenDataset read_retrieval_pairs(const std::string& path, int64_t max_len,
                                  const RetrievalOptions& options = {});

// ---- CIFAR-10 -----------------------------------------------------------------------------

// CIFAR-10's binary batches (data_batch_1.bin ... data_batch_5.bin, test_batch.bin): records
// of 3073 bytes, a label byte 0..9 then 1024 R, 1024 G and 1024 B bytes, each plane 32x32
// row-major. The files are read in order and their records appended.
//
// grayscale = true (LRA): 1024 tokens per image, computed as tf.image.rgb_to_grayscale does
// for uint8 images, all in float32:
//   gray = (uint8)((r * s * 0.2989f + g * s * 0.5870f + b * s * 0.1140f) * 255.5f)
// with s = (float)(1.0 / 255), the products and sums rounded to float32 in that order, and
// the cast truncating toward zero. The result never exceeds 255 (the weights add to 0.9999),
// so TF's optional saturation never matters.
// grayscale = false: 3072 tokens, the R, G, B values of each pixel in turn (the HWC layout
// of tfds's image, flattened).
// vocab_size 256 (the value is the id, no padding), num_classes 10.
// Errors: a missing file, an empty file, a size that is not a multiple of 3073 (naming the
// byte offset where the partial record starts), a label byte > 9 (naming its offset).
TokenDataset read_cifar10(const std::vector<std::string>& paths, bool grayscale = true);

// ---- MNIST / Fashion-MNIST idx files ------------------------------------------------------

// An idx array of unsigned bytes (type code 0x08): labels have 1 dim, images 3.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // row-major, product(dims) bytes
};

// Reads an idx file, gzipped or not. The header is the big-endian magic 0x000008NN (two zero
// bytes, type 0x08, NN = 1..4 dims) followed by NN big-endian uint32 sizes. A wrong magic, an
// other type code, a zero or absurd size (more than 4 GiB of data), a truncated file or bytes
// after the data are errors naming the byte offset, what was expected and what was found.
IdxArray read_idx(const std::string& path);

// An (n, rows, cols) image file and its (n) label file: rows*cols tokens per image (784 for
// 28x28), vocab_size 256, num_classes 10, labels 0..9. limit >= 0 keeps the first
// min(limit, n) examples. Errors: the wrong number of dims, counts that differ, a label > 9
// (naming its byte offset).
TokenDataset read_idx_dataset(const std::string& images, const std::string& labels,
                              int64_t limit = -1);

// Where Debian's dataset-fashion-mnist package installs Fashion-MNIST:
// train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
// t10k-labels-idx1-ubyte.gz. The directory may not exist.
std::string fashion_mnist_dir();

// ---- vocabulary files ---------------------------------------------------------------------

// One token per line; the line index (from 0) is the id. "\r\n" line ends are accepted. An
// empty token, a duplicate (naming both lines) or an empty file is an error naming path:line.
std::vector<std::string> read_vocab(const std::string& path);
// Writes what read_vocab reads back; rejects an empty token, one containing '\n' or '\r', and
// duplicates (naming the ids).
void write_vocab(const std::string& path, const std::vector<std::string>& tokens);

}  // namespace wavspa::data
