/** The paper's token-level facts (PAPER.md §6.3, §6.6, §6.7) reproduced with the exact GPT-2 tokenizer. */
import * as path from 'path';
import { loadTokenizer } from '../datasets/tokenizer/index';
import type { Tokenizer } from '../datasets/tokenizer/types';
import { PROFESSIONS_40, pronounIds, singleTokenProfessions } from '../activities/control/gender/gender';
import { TOPICS, bagTargetIds, readTopicBag, singleTokenBagIds } from '../activities/control/topic/topics';
import { singleToken } from '../activities/control/edit/edit';
import { SHARED_DATA } from './helpers/shared-data';

const BAGS = path.join(SHARED_DATA, 'backpack-topic-classes');
let tok: Tokenizer;
beforeAll(async () => {
  tok = await loadTokenizer('gpt2');
});
const encode = (t: string) => tok.encode(t);

test('topic target ids match the §6.3 table', () => {
  const expected: Record<string, number[]> = {
    arts_culture: [10848, 3968],
    business_entrepreneurs: [1597, 17038],
    celebrity_pop_culture: [16527, 1461, 3968],
    diaries_daily_life: [2566, 4445, 1204],
    family: [1641],
    fashion_style: [6977, 3918],
    film_tv_video: [2646, 31557, 2008],
    fitness_health: [13547, 1535],
    food_dining: [2057, 17423],
    gaming: [7776],
    music: [2647],
    news_social_concern: [1705, 1919, 2328],
    other_hobbies: [45578],
    relationships: [6958],
    sports: [5701],
    travel_adventure: [3067, 8855],
    youth_student_life: [6205, 3710, 1204],
  };
  for (const t of TOPICS) expect([t.name, bagTargetIds(readTopicBag(BAGS, t.name), encode)]).toEqual([t.name, expected[t.name]]);
  // PPLM keeps single-token words only: " diaries" is two tokens and is dropped.
  expect(singleTokenBagIds(readTopicBag(BAGS, 'diaries_daily_life'), encode)).toEqual([4445, 1204]);
});

test('30 single-token professions (D7), he/she ids, MacBook/Apple/HP ids', () => {
  const { kept, dropped } = singleTokenProfessions(PROFESSIONS_40, encode);
  expect(kept).toHaveLength(30);
  expect(dropped).toEqual(['janitor', 'receptionist', 'housekeeper', 'cashier', 'laborer', 'carpenter', 'librarian', 'salesperson', 'mover', 'hairdresser']);
  expect(pronounIds(encode)).toEqual({ he: 339, she: 673 });
  expect([singleToken('MacBook', encode, 'target'), singleToken('Apple', encode, 'remove'), singleToken('HP', encode, 'add')]).toEqual([28084, 4196, 6574]);
});
