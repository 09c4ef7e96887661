/**
 * A closed-form Backpack for the control tests: explicit E [V][d] and sense vectors C [V][k][d],
 * contextualization weights α_ℓ[i, j] = 1/(i+1) for j ≤ i (uniform causal average, every sense), and
 * logits_i = E · Σ_ℓ Σ_{j≤i} α_ℓ[i,j] · w_{j,ℓ} · C(x_j)_ℓ. It honours the interventions the control
 * experiments use (senseScale, senseScaleByToken, alphaScale, senseReplace, embeddingReplace is n/a).
 */
import type { ModelConfig } from '../../native/types';
import type { ControlModel, ForwardOptions, ForwardResult } from '../../activities/control/model';

export class ToyBackpack implements ControlModel {
  readonly config: ModelConfig;
  readonly calls: ForwardOptions[] = [];

  constructor(
    readonly embeddings: Float32Array,
    readonly senses: Float32Array,
    vocab: number,
    dim: number,
    numSenses: number,
    realVocab = vocab,
  ) {
    this.config = {
      arch: 'backpack',
      vocabSize: vocab,
      realVocabSize: realVocab,
      nPositions: 512,
      nEmbd: dim,
      nLayer: 1,
      nHead: 1,
      numSenses,
      scaleAttnByInverseLayerIdx: true,
      layerNormEpsilon: 1e-5,
    };
  }

  outputEmbeddings(): Float32Array {
    return this.embeddings;
  }

  async senseVectors(ids: Int32Array): Promise<Float32Array> {
    const { numSenses: k = 0, nEmbd: d } = this.config;
    const out = new Float32Array(ids.length * k * d);
    ids.forEach((id, i) => out.set(this.senses.subarray(id * k * d, (id + 1) * k * d), i * k * d));
    return out;
  }

  async forward(tokens: Int32Array, opts: ForwardOptions): Promise<ForwardResult> {
    this.calls.push(opts);
    const { vocabSize: V, nEmbd: d, numSenses: k = 0 } = this.config;
    const { batch, seq } = opts;
    const iv = opts.interventions ?? {};
    const logits = new Float32Array(batch * seq * V);
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < seq; i++) {
        const o = new Float64Array(d);
        for (let j = 0; j <= i; j++) {
          const x = tokens[b * seq + j];
          const replaced = iv.senseReplace?.find((r) => r.tokenId === x)?.vectors;
          for (let l = 0; l < k; l++) {
            let weight = 1 / (i + 1);
            if (iv.senseScale) weight *= iv.senseScale[(b * seq + j) * k + l];
            if (iv.senseScaleByToken) weight *= iv.senseScaleByToken[x * k + l];
            if (iv.alphaScale && iv.alphaScale.sense === l && iv.alphaScale.tokenIds.includes(x)) weight *= iv.alphaScale.factor;
            for (let t = 0; t < d; t++) {
              const c = replaced ? replaced[l * d + t] : this.senses[(x * k + l) * d + t];
              o[t] += weight * c;
            }
          }
        }
        for (let v = 0; v < V; v++) {
          let s = 0;
          for (let t = 0; t < d; t++) s += this.embeddings[v * d + t] * o[t];
          logits[(b * seq + i) * V + v] = s;
        }
      }
    }
    return { logits };
  }
}
