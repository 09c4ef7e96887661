/**
 * The 17 topics of the topic-control experiment (PAPER.md §6.3, D10): bag-of-words file names and
 * the matching label of the TweetTopic classifier (19 labels; two unused by the experiment).
 */
import * as fs from 'fs';
import * as path from 'path';

export const TWEET_TOPIC_LABELS = [
  'arts_&_culture',
  'business_&_entrepreneurs',
  'celebrity_&_pop_culture',
  'diaries_&_daily_life',
  'family',
  'fashion_&_style',
  'film_tv_&_video',
  'fitness_&_health',
  'food_&_dining',
  'gaming',
  'learning_&_educational',
  'music',
  'news_&_social_concern',
  'other_hobbies',
  'relationships',
  'science_&_technology',
  'sports',
  'travel_&_adventure',
  'youth_&_student_life',
] as const;

export type TweetTopicLabel = (typeof TWEET_TOPIC_LABELS)[number];

export interface TopicSpec {
  /** Bag file stem in backpack-topic-classes/. */
  name: string;
  label: TweetTopicLabel;
}

/** Alphabetical (the order the predictions are concatenated in for MAUVE). */
export const TOPICS: TopicSpec[] = [
  { name: 'arts_culture', label: 'arts_&_culture' },
  { name: 'business_entrepreneurs', label: 'business_&_entrepreneurs' },
  { name: 'celebrity_pop_culture', label: 'celebrity_&_pop_culture' },
  { name: 'diaries_daily_life', label: 'diaries_&_daily_life' },
  { name: 'family', label: 'family' },
  { name: 'fashion_style', label: 'fashion_&_style' },
  { name: 'film_tv_video', label: 'film_tv_&_video' },
  { name: 'fitness_health', label: 'fitness_&_health' },
  { name: 'food_dining', label: 'food_&_dining' },
  { name: 'gaming', label: 'gaming' },
  { name: 'music', label: 'music' },
  { name: 'news_social_concern', label: 'news_&_social_concern' },
  { name: 'other_hobbies', label: 'other_hobbies' },
  { name: 'relationships', label: 'relationships' },
  { name: 'sports', label: 'sports' },
  { name: 'travel_adventure', label: 'travel_&_adventure' },
  { name: 'youth_student_life', label: 'youth_&_student_life' },
];

export function topicByName(name: string): TopicSpec {
  const topic = TOPICS.find((t) => t.name === name);
  if (!topic) throw new Error(`unknown topic "${name}"; expected one of ${TOPICS.map((t) => t.name).join(', ')}`);
  return topic;
}

/** Reads a bag-of-words file: one word per line, blank lines ignored, surrounding whitespace trimmed. */
export function readBag(file: string): string[] {
  const words = fs
    .readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((w) => w.trim())
    .filter((w) => w.length > 0);
  if (words.length === 0) throw new Error(`${file}: bag of words is empty`);
  return words;
}

export function readTopicBag(dir: string, topic: string): string[] {
  return readBag(path.join(dir, `${topicByName(topic).name}.txt`));
}

/** Target ids of a bag: the first token of encode(" " + word) for every word (duplicates kept once). */
export function bagTargetIds(words: string[], encode: (text: string) => number[]): number[] {
  const ids: number[] = [];
  for (const w of words) {
    const pieces = encode(' ' + w);
    if (pieces.length === 0) throw new Error(`bag word "${w}" encodes to no tokens`);
    if (!ids.includes(pieces[0])) ids.push(pieces[0]);
  }
  return ids;
}

/** Single-token bag words (PPLM keeps only these): encode(" " + word) has exactly one token. */
export function singleTokenBagIds(words: string[], encode: (text: string) => number[]): number[] {
  const ids: number[] = [];
  for (const w of words) {
    const pieces = encode(' ' + w);
    if (pieces.length === 1 && !ids.includes(pieces[0])) ids.push(pieces[0]);
  }
  return ids;
}
