/**
 * Nelder–Mead simplex minimisation with the conventions of scipy.optimize.minimize(method=
 * 'Nelder-Mead') — initial simplex x0 plus 5 % per coordinate (0.00025 for zero coordinates),
 * reflection 1, expansion 2, contraction 0.5, shrink 0.5, stopping when both the simplex spread
 * (xatol) and the value spread (fatol) are small, or after maxiter iterations / maxfev evaluations
 * (default 200·n each).
 */

export interface NelderMeadOptions {
  xatol: number;
  fatol: number;
  maxIterations: number;
  maxEvaluations: number;
  /** Explicit initial simplex (n+1 points); default as scipy. */
  initialSimplex?: number[][];
}

export interface NelderMeadResult {
  x: number[];
  fun: number;
  iterations: number;
  evaluations: number;
  converged: boolean;
}

export function nelderMead(f: (x: number[]) => number, x0: number[], opts: Partial<NelderMeadOptions> = {}): NelderMeadResult {
  const n = x0.length;
  if (n === 0) throw new Error('nelderMead: x0 must have at least one coordinate');
  const options: NelderMeadOptions = {
    xatol: 1e-4,
    fatol: 1e-4,
    maxIterations: 200 * n,
    maxEvaluations: 200 * n,
    ...opts,
  };
  const rho = 1;
  const chi = 2;
  const psi = 0.5;
  const sigma = 0.5;

  let evaluations = 0;
  const evaluate = (x: number[]) => {
    evaluations++;
    const v = f(x);
    if (Number.isNaN(v)) throw new Error(`nelderMead: objective returned NaN at [${x.join(', ')}]`);
    return v;
  };

  let sim: number[][];
  if (options.initialSimplex) {
    if (options.initialSimplex.length !== n + 1 || options.initialSimplex.some((p) => p.length !== n)) {
      throw new Error(`nelderMead: initial simplex must have ${n + 1} points of dimension ${n}`);
    }
    sim = options.initialSimplex.map((p) => p.slice());
  } else {
    sim = [x0.slice()];
    for (let k = 0; k < n; k++) {
      const y = x0.slice();
      y[k] = y[k] !== 0 ? 1.05 * y[k] : 0.00025;
      sim.push(y);
    }
  }
  let fsim = sim.map(evaluate);
  const sortSimplex = () => {
    const order = fsim.map((v, i) => i).sort((a, b) => fsim[a] - fsim[b] || a - b);
    sim = order.map((i) => sim[i]);
    fsim = order.map((i) => fsim[i]);
  };
  sortSimplex();

  let iterations = 1;
  let converged = false;
  const combine = (a: number, xa: number[], b: number, xb: number[]) => xa.map((v, i) => a * v + b * xb[i]);
  while (evaluations < options.maxEvaluations && iterations < options.maxIterations) {
    let spreadX = 0;
    let spreadF = 0;
    for (let j = 1; j <= n; j++) {
      for (let i = 0; i < n; i++) spreadX = Math.max(spreadX, Math.abs(sim[j][i] - sim[0][i]));
      spreadF = Math.max(spreadF, Math.abs(fsim[0] - fsim[j]));
    }
    if (spreadX <= options.xatol && spreadF <= options.fatol) {
      converged = true;
      break;
    }
    const xbar = new Array(n).fill(0);
    for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) xbar[i] += sim[j][i] / n;
    const worst = sim[n];
    const xr = combine(1 + rho, xbar, -rho, worst);
    const fxr = evaluate(xr);
    let shrink = false;
    if (fxr < fsim[0]) {
      const xe = combine(1 + rho * chi, xbar, -rho * chi, worst);
      const fxe = evaluate(xe);
      if (fxe < fxr) {
        sim[n] = xe;
        fsim[n] = fxe;
      } else {
        sim[n] = xr;
        fsim[n] = fxr;
      }
    } else if (fxr < fsim[n - 1]) {
      sim[n] = xr;
      fsim[n] = fxr;
    } else if (fxr < fsim[n]) {
      const xc = combine(1 + psi * rho, xbar, -psi * rho, worst);
      const fxc = evaluate(xc);
      if (fxc <= fxr) {
        sim[n] = xc;
        fsim[n] = fxc;
      } else shrink = true;
    } else {
      const xcc = combine(1 - psi, xbar, psi, worst);
      const fxcc = evaluate(xcc);
      if (fxcc < fsim[n]) {
        sim[n] = xcc;
        fsim[n] = fxcc;
      } else shrink = true;
    }
    if (shrink) {
      for (let j = 1; j <= n; j++) {
        sim[j] = combine(1 - sigma, sim[0], sigma, sim[j]);
        fsim[j] = evaluate(sim[j]);
      }
    }
    iterations++;
    sortSimplex();
  }
  return { x: sim[0].slice(), fun: fsim[0], iterations, evaluations, converged };
}

/** Async objective variant (model forward passes): same algorithm, awaited evaluations. */
export async function nelderMeadAsync(
  f: (x: number[]) => Promise<number>,
  x0: number[],
  opts: Partial<NelderMeadOptions> = {},
): Promise<NelderMeadResult> {
  // Record-and-replay: run the synchronous algorithm on a cache; on a miss, evaluate and restart.
  // Deterministic because the algorithm's path depends only on the values it has seen.
  const cache = new Map<string, number>();
  for (;;) {
    let missing: number[] | undefined;
    const result = (() => {
      try {
        return nelderMead((x) => {
          const key = x.map((v) => v.toString()).join(',');
          const v = cache.get(key);
          if (v === undefined) {
            missing = x;
            throw MISS;
          }
          return v;
        }, x0, opts);
      } catch (e) {
        if (e === MISS) return undefined;
        throw e;
      }
    })();
    if (result) return result;
    const x = missing!;
    cache.set(x.map((v) => v.toString()).join(','), await f(x));
  }
}

const MISS = Symbol('nelder-mead cache miss');
