// RoBERTa sequence classifier, inference only (CPU, fp32): the encoder of Hugging Face's
// RobertaForSequenceClassification and its classification head, for the topic classifier of PAPER.md §6.3.
//
// Shapes follow the Hugging Face checkpoint: Linear weights are [out][in]; parameters live in one
// contiguous buffer in the order of `tensors` (query/key/value of a layer are adjacent, so the three
// projections run as one [3d][d] product). Sequences are packed without padding: attention runs per
// sequence over its own tokens, which equals the padded computation with an attention mask.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace bp::roberta {

struct Config {
  int vocab = 0;
  int maxPositions = 0;   // max_position_embeddings (includes the padding offset)
  int typeVocab = 1;      // type_vocab_size; row 0 is added to every token
  int d = 0;              // hidden_size
  int nLayer = 0;
  int nHead = 0;
  int ff = 0;             // intermediate_size
  int numLabels = 0;
  int padId = 1;          // pad_token_id = padding_idx of the position embedding
  float lnEps = 1e-5f;
};

struct TensorInfo {
  std::string key;  // the Hugging Face state-dict name
  std::vector<int> shape;
  size_t offset = 0, size = 0;
};

struct ForwardRequest {
  const int32_t* ids = nullptr;      // all sequences back to back
  const int32_t* lengths = nullptr;  // [B] tokens per sequence (each >= 1)
  int B = 0;
  float* logitsOut = nullptr;        // [B][numLabels]
  float* hiddenOut = nullptr;        // optional [sum lengths][d]: last encoder layer
  const std::atomic<int>* cancel = nullptr;
};

class Classifier {
 public:
  explicit Classifier(const Config& c);

  const Config cfg;
  std::vector<TensorInfo> tensors;
  std::vector<float> params;

  // Copies one tensor's values (row-major, `count` floats) into the parameter buffer.
  void setTensor(const std::string& key, const float* data, size_t count);
  // Keys never set since construction (a loader must fill every tensor).
  std::vector<std::string> unsetTensors() const;
  void forward(const ForwardRequest& r);

 private:
  std::vector<bool> set_;
  size_t add(const std::string& key, std::vector<int> shape);
  const float* at(size_t offset) const { return params.data() + offset; }
  void selfAttention(float* ctx, const float* qkv, const std::vector<long>& start, int H, bool firstOnly,
                     std::vector<std::vector<float>>& scores) const;

  struct Layer {
    size_t qkvW, qkvB, attnOutW, attnOutB, ln1W, ln1B, ffInW, ffInB, ffOutW, ffOutB, ln2W, ln2B;
  };
  size_t wordEmb_, posEmb_, typeEmb_, embLnW_, embLnB_, headDenseW_, headDenseB_, headOutW_, headOutB_;
  std::vector<Layer> layers_;
};

}  // namespace bp::roberta
