/**
 * The evaluation-data registry (PAPER.md §6, §10): every file the evaluations read, with its
 * canonical URL, sha256 and size, the path of its copy in the data mirror, and a parser to a table.
 *
 * `fetchDataset(name, {cacheDir, mirror})` downloads (or copies) and verifies the files and returns
 * their local paths. `mirror` (default: env PIPELINE_DATA_MIRROR) is a directory or an http(s) base
 * URL laid out like shared/data; with it, no canonical host is contacted. Where the mirror holds a
 * different (non-canonical) copy, the mirror's own checksum is used and the result says so.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BLIMP_SHA256 } from './blimp-sha256';
import { downloadFile, MissingSourceError, stderrProgress } from './download';
import { extractZipMember } from './zip';
import { createHash } from 'node:crypto';

export interface RegistryFile {
  /** Local file name inside the dataset's cache directory. */
  file: string;
  /** Canonical download URL (for a zip, the archive). */
  url: string;
  /** Member path inside the zip at `url`. */
  member?: string;
  sha256: string;
  size?: number;
  /** Path of the copy under the data mirror (shared/data layout). */
  mirrorPath: string;
  /** When the mirror's copy is not byte-identical to the canonical file: its own checksum. */
  mirrorSha256?: string;
  mirrorSize?: number;
}

export interface RegistryEntry {
  name: string;
  description: string;
  files: RegistryFile[];
  /** Where the numbers/words come from when it is not a file (e.g. PAPER.md tables). */
  note?: string;
}

const HEWITT = 'https://raw.githubusercontent.com/john-hewitt/backpacks-flash-attn/ae52e6b6273eb5710fb63803e37a33c63e55282a';
const FARUQUI = 'https://raw.githubusercontent.com/mfaruqui/eval-word-vectors/f2cd65ecf00cad4edb4cf3b207e8035b45c5181b';
const TWEETS = 'https://raw.githubusercontent.com/anon7331/tweet_topicXL/a96907362e7054f7024506dfd9ec41095275783c/data/en';
const BLIMP = 'https://raw.githubusercontent.com/alexwarstadt/blimp/d07303a7662f1942d70c5e2bbac7aa021c6cdbd0/data';

export const TOPICS: { topic: string; sha256: string; size: number }[] = [
  { topic: 'arts_culture', sha256: '26f8c3512ea33a8c22d21a5f85b85c631f57c8508cb1280d35452b9f6eb3507b', size: 13 },
  { topic: 'business_entrepreneurs', sha256: '5fdf6fcf57186cd487d60bc02a2d3ef0fbd673e64b53820001f7e93ee532dd07', size: 23 },
  { topic: 'celebrity_pop_culture', sha256: 'ac74d7ae1694a837a05f12adb234009c83251b3eb0d19dfb2622a0419a4d303f', size: 22 },
  { topic: 'diaries_daily_life', sha256: '75425747e239b3b318edf6d60a089ac0b52a2cf29e226b657f5c3af83f46eab9', size: 19 },
  { topic: 'family', sha256: 'f886996f4c6cb40ca5a3d35302de098a535b876265d7c2c3025aaf253196f725', size: 7 },
  { topic: 'fashion_style', sha256: '7b01edab6a816aa713f1c80f35221487f8ddb0d70dd902cb5471f6c1a4fb8a8b', size: 14 },
  { topic: 'film_tv_video', sha256: 'bf905eba24aee10793cd87f39eadb45db4fdc45a4e48c6211273a2b077d24e23', size: 14 },
  { topic: 'fitness_health', sha256: 'd580189e6534cbe44184dd128b74d97d117aa48228b28f2f0c952412f8555957', size: 15 },
  { topic: 'food_dining', sha256: 'c33b607e3c968f7b924b90f04cdbad14f9dc7dbc289414f7523b5526fc3dd058', size: 12 },
  { topic: 'gaming', sha256: 'a5ee3b029229ece4df3879e750ef2b304b77c3fe193f90b655b50f2d53d82547', size: 7 },
  { topic: 'music', sha256: 'd543a2f9ecb1161115da947409497a0a31683864c13b34b181e5d786b6724435', size: 6 },
  { topic: 'news_social_concern', sha256: '3468b1f379d9816d248c26cb10fb0e45c06f7a2797677d4c899afcd262935140', size: 20 },
  { topic: 'other_hobbies', sha256: '6663cc0a88c9005e5844f7b8d6b4b43e907842f549219e9ab9e14e901e9e8512', size: 8 },
  { topic: 'relationships', sha256: '6d2409beb8c17fd42ceec0c6f92c22b919d5a91874d3ae4e0fd8ceee883ae194', size: 14 },
  { topic: 'sports', sha256: 'cc35fe6fd317b39925ab83438f5af945076eb0b91990642a88195c28d66e12cd', size: 7 },
  { topic: 'travel_adventure', sha256: 'e10d0592f056d41e4b3c2370d0ec3810e6c80327f180146f8c94ed80d34bb075', size: 17 },
  { topic: 'youth_student_life', sha256: '876a9b79647391972aad35c7a582b71de2a86c7d99979f0413f6e7c24abfc453', size: 19 },
];

export const BLIMP_UIDS = Object.keys(BLIMP_SHA256);

export const REGISTRY: RegistryEntry[] = [
  {
    name: 'simlex999',
    description: 'SimLex-999 (Hill et al. 2015), the authors\' file; canonical: member of https://fh295.github.io/SimLex-999.zip',
    files: [{ file: 'SimLex-999.txt', url: `${HEWITT}/training/data/SimLex-999/SimLex-999.txt`, sha256: 'ca00ff8515a36cde32d13c2b83def23f5a167b67db93ebfcfb7dae039ba22c0b', size: 44050, mirrorPath: 'simlex-999/SimLex-999.txt' }],
  },
  {
    name: 'simverb3500',
    description: 'SimVerb-3500 (Gerz et al. 2016), 5 columns, no header; author page http://people.ds.cam.ac.uk/dsg40/simverb.html',
    files: [{ file: 'SimVerb-3500.txt', url: `${HEWITT}/training/data/SimVerb-3500.txt`, sha256: 'b58f68454cf9354b94ecd8bfd778ff2cc784a25fc7dca02bc695319ad2b4157e', size: 97778, mirrorPath: 'simverb-3500/SimVerb-3500.txt' }],
  },
  {
    name: 'rg65',
    description: 'RG-65 (Rubenstein & Goodenough 1965), ";"-separated, 0-4; the authors\' copy',
    files: [{ file: 'RG65.csv', url: `${HEWITT}/training/data/RG65.csv`, sha256: 'bf02365e889978104e2c5422d91176b34c4862c267269ef6174263f16c86cab5', size: 1285, mirrorPath: 'rg-65/RG65.csv' }],
  },
  {
    name: 'ws353',
    description: 'WordSim-353 combined (Finkelstein et al. 2002), header "Word 1,Word 2,Human (mean)"; plus the tab-separated all/rel/sim files',
    files: [
      { file: 'WS353.csv', url: `${HEWITT}/training/data/WS353.csv`, sha256: '49ff6433ae68abe716fb66433fd870483e289a7a8c74531f59eca847d103fff3', size: 7433, mirrorPath: 'wordsim-353/WS353.csv' },
      { file: 'EN-WS-353-ALL.txt', url: `${FARUQUI}/data/word-sim/EN-WS-353-ALL.txt`, sha256: 'ce12919b240af45bdf46d243601eaca2b6212b159b5e7e9b435ee7ee40c5619c', size: 7405, mirrorPath: 'wordsim-353/EN-WS-353-ALL.txt' },
      { file: 'EN-WS-353-REL.txt', url: `${FARUQUI}/data/word-sim/EN-WS-353-REL.txt`, sha256: '66a7c88100624d0a391605ff61ce84e11d11ee620d51ec0298da49592838f8fa', size: 5134, mirrorPath: 'wordsim-353/EN-WS-353-REL.txt' },
      { file: 'EN-WS-353-SIM.txt', url: `${FARUQUI}/data/word-sim/EN-WS-353-SIM.txt`, sha256: 'f1da938998863c94e53f72f984a5c6e215f0b46c323aae8f0f4930703a339107', size: 4002, mirrorPath: 'wordsim-353/EN-WS-353-SIM.txt' },
    ],
  },
  {
    name: 'lambada_openai',
    description: 'LAMBADA, OpenAI detokenised test set (5,153 documents)',
    files: [{ file: 'lambada_test.jsonl', url: 'https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl', sha256: '4aa8d02cd17c719165fc8a7887fddd641f43fcafa4b1c806ca8abc31fabdb226', size: 1819752, mirrorPath: 'lambada-openai/lambada_test.jsonl' }],
  },
  {
    name: 'wikitext2_raw_test',
    description: 'WikiText-2 raw v1 test split (wiki.test.raw)',
    note: 'The mirror copy is NOT canonical (CRLF line ends, blank lines removed): page splitting and word counts differ, so results from it are smoke tests only. Without a mirror the canonical zip member is fetched.',
    files: [{
      file: 'wiki.test.raw',
      url: 'https://huggingface.co/datasets/ggml-org/ci/resolve/927b3642933080f1b0e811e2f916e14c292992f9/wikitext-2-raw-v1.zip',
      member: 'wikitext-2-raw/wiki.test.raw',
      sha256: '173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08',
      size: 1290590,
      mirrorPath: 'wikitext-2-raw_NONCANONICAL/wiki.test.raw',
      mirrorSha256: '4f3e427e4aff23acff917a8a51aeae21bf12832256e26914c8fc250dcef4103c',
      mirrorSize: 1290547,
    }],
  },
  {
    name: 'owt_val_100len',
    description: 'MAUVE references: 4,007 OWT validation prefixes (EOS + 99 tokens), the authors\' release',
    files: [{ file: 'val-100len.json', url: `${HEWITT}/training/val-100len.json`, sha256: '1b73b625c536fa27a0dd78ced3b949bbb27c1204a62f89436ec07238637031b3', size: 1906846, mirrorPath: 'openwebtext/val-100len.json' }],
  },
  {
    name: 'topic_bags',
    description: 'The 17 topic bags of words (one word per line) used for sense-vector topic control',
    files: TOPICS.map((t) => ({ file: `${t.topic}.txt`, url: `${HEWITT}/training/topic_classes/${t.topic}.txt`, sha256: t.sha256, size: t.size, mirrorPath: `backpack-topic-classes/${t.topic}.txt` })),
  },
  {
    name: 'gender_bias',
    description: 'Professions (40, and the 30 single-token ones) and the 5 estimation + 13 evaluation prompts of PAPER.md §6.6',
    note: 'No download: the lists are the paper\'s (PAPER.md §6.6), kept in datasets/gender.ts. The Bolukbasi et al. lists are the separate entry "debiaswe".',
    files: [],
  },
  {
    name: 'debiaswe',
    description: 'Bolukbasi et al. 2016 gender word lists (context only)',
    files: [
      { file: 'professions.json', url: 'https://raw.githubusercontent.com/tolga-b/debiaswe/8de315387703855743407bb81a35a171b2bee2b1/data/professions.json', sha256: '32cc82c7761e7cfb14e37e06dc1aa9f758bc8441f79ca7288996d3fc7c24639a', size: 8143, mirrorPath: 'gender-bias-debiaswe/professions.json' },
      { file: 'definitional_pairs.json', url: 'https://raw.githubusercontent.com/tolga-b/debiaswe/4c3fa843ffff45115c43fe112d4283c91d225c09/data/definitional_pairs.json', sha256: 'f2387fdd4ae4d956083ee7594f1401b1ba112914d40a99bb61d481de73db9614', size: 187, mirrorPath: 'gender-bias-debiaswe/definitional_pairs.json' },
    ],
  },
  {
    name: 'tweet_topic',
    description: 'TweetTopic multilingual, English part (cardiffnlp/tweet_topic_multilingual, 19 labels)',
    files: (['1000', 'train', 'validation', 'test'] as const).map((split) => ({
      file: `en_${split}.jsonl`,
      url: `${TWEETS}/en_${split}.jsonl`,
      sha256: { '1000': '50fac2b99c5584be2a44afc31612dfa6234f1e267bc1648a0feeda76af9ffdb8', train: '7be8def4f2df8199e53b28abe7507d598de6245d76b2b625b4cef941c42ceb6a', validation: 'a9f998cd9d2e3fd369fce5059697b60b6c56e166acaec1db2341ba874cd6b2ab', test: 'a2a6be4e1c20a5166d1dac532469384de9b6f6282d95d07b3c5646ae7b8c16f5' }[split],
      size: { '1000': 629381, train: 112772, validation: 12604, test: 504005 }[split],
      mirrorPath: `tweet-topic-multilingual-en/en_${split}.jsonl`,
    })),
  },
  {
    name: 'blimp',
    description: 'BLiMP, 67 paradigms × 1,000 minimal pairs (CC BY 4.0)',
    files: BLIMP_UIDS.map((uid) => ({ file: `${uid}.jsonl`, url: `${BLIMP}/${uid}.jsonl`, sha256: BLIMP_SHA256[uid], mirrorPath: `blimp/${uid}.jsonl` })),
  },
];

export function registryEntry(name: string): RegistryEntry {
  const entry = REGISTRY.find((e) => e.name === name);
  if (!entry) throw new Error(`unknown dataset "${name}"; known: ${REGISTRY.map((e) => e.name).join(', ')}`);
  return entry;
}

/** Where verified downloads are kept: $PIPELINE_CACHE_DIR/data (default ~/.cache/backpack-pipeline/data). */
export function dataCacheDir(): string {
  return path.join(process.env.PIPELINE_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'backpack-pipeline'), 'data');
}

export interface FetchOptions {
  /** Default: dataCacheDir(). */
  cacheDir?: string;
  /** Directory or http(s) base URL in the shared/data layout; default env PIPELINE_DATA_MIRROR. */
  mirror?: string;
  onProgress?: (message: string, fraction: number) => void;
  signal?: AbortSignal;
}

export interface FetchedDataset {
  name: string;
  dir: string;
  /** file name → local path */
  files: Record<string, string>;
  /** false when any file is a non-canonical mirror copy */
  canonical: boolean;
  notes: string[];
  /** file name → sha256 as verified */
  sha256: Record<string, string>;
}

function mirrorSource(mirror: string, rel: string): string {
  return /^https?:\/\//.test(mirror) ? `${mirror.replace(/\/+$/, '')}/${rel.split('/').map(encodeURIComponent).join('/')}` : path.join(mirror, rel);
}

export async function fetchDataset(name: string, options: FetchOptions = {}): Promise<FetchedDataset> {
  const entry = registryEntry(name);
  const mirror = options.mirror ?? process.env.PIPELINE_DATA_MIRROR ?? undefined;
  const dir = path.join(options.cacheDir ?? dataCacheDir(), entry.name);
  fs.mkdirSync(dir, { recursive: true });
  const result: FetchedDataset = { name, dir, files: {}, canonical: true, notes: entry.note ? [entry.note] : [], sha256: {} };
  for (let i = 0; i < entry.files.length; i++) {
    const f = entry.files[i];
    const dest = path.join(dir, f.file);
    // Activities pass onProgress (engine progress bars); interactive callers get a bar on stderr.
    const bar = options.onProgress ? null : stderrProgress(`${name}/${f.file}`);
    const progress = (fraction: number, bytes = 0, total?: number) => {
      if (options.onProgress) options.onProgress(`${name}/${f.file}`, (i + fraction) / entry.files.length);
      else bar!(fraction, bytes, total);
    };
    if (mirror) {
      const nonCanonical = f.mirrorSha256 !== undefined;
      try {
        result.sha256[f.file] = await downloadFile({
          url: mirrorSource(mirror, f.mirrorPath),
          dest,
          sha256: f.mirrorSha256 ?? f.sha256,
          size: nonCanonical ? f.mirrorSize : f.size,
          label: `dataset ${name}: ${f.mirrorPath}`,
          onProgress: progress,
          signal: options.signal,
        });
      } catch (e) {
        if (e instanceof MissingSourceError) {
          throw new MissingSourceError(`dataset ${name}: ${f.mirrorPath} is not in the mirror ${mirror} (${e.message})`);
        }
        throw e;
      }
      if (nonCanonical) {
        result.canonical = false;
        result.notes.push(`${f.file}: mirror copy is non-canonical (sha256 ${f.mirrorSha256}, canonical ${f.sha256})`);
      }
    } else if (f.member) {
      const archive = path.join(dir, `${path.basename(new URL(f.url).pathname)}`);
      await downloadFile({ url: f.url, dest: archive, sha256: 'from-server', label: `dataset ${name}: archive`, onProgress: progress, signal: options.signal });
      const data = extractZipMember(fs.readFileSync(archive), f.member, archive);
      const actual = createHash('sha256').update(data).digest('hex');
      if (actual !== f.sha256) throw new Error(`dataset ${name}: checksum mismatch for ${f.member} in ${f.url}: expected ${f.sha256}, got ${actual}`);
      const tmp = `${dest}.part`;
      fs.writeFileSync(tmp, data);
      fs.renameSync(tmp, dest);
      result.sha256[f.file] = actual;
    } else {
      result.sha256[f.file] = await downloadFile({ url: f.url, dest, sha256: f.sha256, size: f.size, label: `dataset ${name}: ${f.file}`, onProgress: progress, signal: options.signal });
    }
    result.files[f.file] = dest;
  }
  return result;
}
