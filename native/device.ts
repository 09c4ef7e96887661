/**
 * Device selection for the native engine: `cpu`, `cuda` / `cuda:N` / `cuda:0,1,2,3` (data parallel over the
 * listed GPUs, one thread each, NCCL all-reduce), or `auto` (the first GPU when this build has the CUDA backend
 * and a GPU is visible, else the CPU). The CUDA model has the CPU model's raw surface, so the facade drives either.
 */
import { addon, type RawConfig, type RawModel } from './binding';

export type Precision = 'fp32' | 'tf32' | 'bf16' | 'fp16';

export interface DeviceOptions {
  /** 'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'cuda:N,M,...' (default 'cpu'). */
  device?: string;
  /**
   * Matmul arithmetic: fp32 (strict, default); tf32 (CUDA tensor cores; fp32 on the CPU); bf16 (CUDA: bf16
   * tensor-core GEMMs; CPU: AMX bf16 tiles where the CPU has them, else fp32), always with fp32 accumulation and
   * fp32 master weights; fp16 (CUDA only: fp16 tensor-core GEMMs, the paper's training arithmetic; train it with
   * loss scaling).
   */
  precision?: Precision;
}

export interface ResolvedDevice {
  kind: 'cpu' | 'cuda';
  /** CUDA device indices (empty for the CPU). */
  devices: number[];
  /** Canonical name: 'cpu' or 'cuda:0,1'. */
  name: string;
}

type CudaModelCtor = new (config: RawConfig, opts: { devices: number[]; precision: Precision }) => RawModel;
interface CudaAddon {
  /** The default build of the CUDA engine: fp32, tf32, bf16. */
  CudaModel?: CudaModelCtor;
  /** The fp16 build (fp16 GEMM operands, native/src/cuda/half16.cuh). */
  CudaModelFp16?: CudaModelCtor;
  cudaDevices?: () => { index: number; name: string }[];
}

function cudaAddon(): CudaAddon {
  return addon() as unknown as CudaAddon;
}

/** GPUs the CUDA backend can see ([] without the backend, a driver or a GPU). */
export function cudaDevices(): { index: number; name: string }[] {
  const a = cudaAddon();
  return a.cudaDevices ? a.cudaDevices() : [];
}

export function resolveDevice(spec: string | undefined): ResolvedDevice {
  const s = (spec ?? 'cpu').trim().toLowerCase();
  if (s === 'cpu') return { kind: 'cpu', devices: [], name: 'cpu' };
  if (s === 'auto') return cudaDevices().length > 0 ? resolveDevice('cuda:0') : resolveDevice('cpu');
  const m = /^cuda(?::(\d+(?:,\d+)*))?$/.exec(s);
  if (!m) throw new Error(`device "${spec}": expected auto, cpu, cuda, cuda:N or cuda:N,M,...`);
  const devices = m[1] ? m[1].split(',').map(Number) : [0];
  if (new Set(devices).size !== devices.length) throw new Error(`device "${spec}": a GPU is listed twice`);
  if (!cudaAddon().CudaModel) throw new Error(`device "${spec}": this build of the native engine has no CUDA backend (install a CUDA toolkit, e.g. scripts/install-cuda-toolkit.sh, and rebuild with BACKPACK_CUDA=1)`);
  const visible = cudaDevices().length;
  for (const d of devices) if (d >= visible) throw new Error(`device "${spec}": GPU ${d} does not exist (${visible} visible)`);
  return { kind: 'cuda', devices, name: `cuda:${devices.join(',')}` };
}

/** The raw addon model for a resolved device. */
export function createRawModel(config: RawConfig, device: ResolvedDevice, precision: Precision = 'fp32'): RawModel {
  if (device.kind === 'cpu') {
    if (precision === 'fp16') throw new Error(`precision fp16 needs the CUDA backend (device cuda or cuda:N); the CPU engine computes in fp32, or bf16 on AMX tiles`);
    const model = new (addon().NativeModel)(config);
    model.setMatmulPrecision?.(precision === 'bf16' ? 'bf16' : 'fp32');
    return model;
  }
  const a = cudaAddon();
  const Ctor = precision === 'fp16' ? a.CudaModelFp16 : a.CudaModel;
  if (!Ctor) throw new Error(`precision ${precision}: this build of the native engine lacks its CUDA model; rebuild with BACKPACK_CUDA=1`);
  return new Ctor(config, { devices: device.devices, precision });
}
