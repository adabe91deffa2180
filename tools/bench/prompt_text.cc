#include "tools/bench/prompt_text.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace pagoda {
namespace {

// Short stories in plain English, written for these benchmarks (no third-party text). Simple
// prose like this is what small story models such as stories260K were trained on, so their
// continuations stay ordinary text.
constexpr const char* kCorpus[] = {
    "Once upon a time, in a small village by the sea, there lived a girl named Mia. Every "
    "morning she walked to the harbor with her grandfather to watch the fishing boats come in. "
    "The boats were painted red and blue and yellow, and the sailors waved at her when they "
    "tied their ropes. One day a little boat came in with no one on it. Mia looked inside and "
    "found a tiny gray kitten sleeping on a pile of nets. She picked it up and held it close. "
    "\"Can we keep him?\" she asked. Her grandfather smiled and said they could, as long as she "
    "fed him every day. Mia named the kitten Pebble, and from then on Pebble came to the harbor "
    "with them and sat on the wall, watching the waves.\n\n",
    "Tom had a red ball that he loved more than any other toy. He took it to the park every "
    "afternoon and kicked it across the grass. One windy day the ball rolled down the hill and "
    "into the pond. Tom was sad because he could not swim. A big brown dog saw the ball and "
    "jumped into the water. The dog swam out, caught the ball in its mouth and brought it back "
    "to Tom. Tom laughed and hugged the wet dog. The dog's owner, an old man with a green hat, "
    "told Tom that the dog's name was Biscuit. After that, Tom and Biscuit played together in "
    "the park every day, and Tom never kicked the ball too close to the pond again.\n\n",
    "Lily wanted to grow the biggest sunflower in the whole town. In spring she planted a seed "
    "in the corner of the garden where the sun shone all day. She watered it every morning and "
    "told it stories every night. At first nothing happened, and Lily worried that the seed was "
    "lost. Then a small green shoot pushed up through the soil. It grew taller and taller, past "
    "the fence, past the window, until it was taller than her father. When the big yellow "
    "flower opened, the birds came to eat the seeds, and Lily saved some of them in a jar so "
    "that next year she could plant a whole row of sunflowers along the fence.\n\n",
    "Sam and his sister Anna built a fort out of blankets and chairs in the living room. They "
    "brought in pillows, a flashlight and a plate of cookies. Inside the fort it was dark and "
    "cozy, and they pretended it was a castle on top of a mountain. Anna was the queen and Sam "
    "was the brave knight who guarded the gate. When their mother called them for dinner, they "
    "said the bridge was up and nobody could come in. Their mother laughed and said that even "
    "queens and knights have to eat their vegetables. So they lowered the bridge, ate their "
    "dinner, and went back to the castle until it was time for bed.\n\n",
    "There was once a little bird who was afraid to fly. All of her brothers and sisters had "
    "already left the nest, but she sat on the edge of the branch and looked down at the ground "
    "far below. \"What if I fall?\" she asked her mother. Her mother said, \"You will not fall. "
    "Your wings are strong, and the wind will help you.\" The little bird took a deep breath, "
    "closed her eyes and jumped. For a moment she dropped, and then her wings opened and she "
    "rose up over the trees. She flew around the garden three times, singing as loud as she "
    "could, and then she landed next to her mother, proud and happy.\n\n",
    "Ben found an old key in the sand at the beach. It was made of brass and had a little star "
    "on the handle. He showed it to his friend Rosa, and they wondered what it could open. They "
    "tried the door of the beach hut, the lock on Rosa's bike and the lid of a wooden box, but "
    "the key did not fit anything. At the end of the day they walked past the lighthouse and "
    "saw a small door at the bottom with a star painted on it. Ben put the key in the lock and "
    "turned it. The door opened, and inside they found a narrow staircase that went all the way "
    "up to the light, where they could see the whole coast shining in the evening sun.\n\n",
    "It snowed all night, and in the morning the whole street was white. Emma put on her boots, "
    "her coat, her scarf and her mittens and ran outside. She rolled a small ball of snow and "
    "pushed it until it was as big as a wheel. Her neighbor, Mr. Lee, helped her lift a second "
    "ball on top, and then a third one for the head. Emma used two stones for the eyes, a carrot "
    "for the nose and a row of buttons for the smile. She gave the snowman her old red hat. When "
    "the sun came out in the afternoon, the snowman began to lean to one side, and Emma decided "
    "that he was just waving goodbye.\n\n",
    "Max the puppy was always hungry. He ate his own food, then he tried to eat the cat's food, "
    "and once he even tried to eat a sock. One evening the family baked a big apple pie and put "
    "it on the kitchen table to cool. Max sat under the table and sniffed the air. He knew he "
    "should not jump up, but the pie smelled so good. Just as he was about to try, the little "
    "boy of the family came in and gave him a special biscuit shaped like a bone. Max wagged "
    "his tail, ate the biscuit and fell asleep by the warm oven, dreaming of apples.\n\n",
    "Grandma Rose kept a garden full of vegetables behind her house. There were tomatoes, beans, "
    "carrots, potatoes and long green cucumbers. When the children came to visit in the summer, "
    "she gave each of them a basket and asked them to pick whatever was ready. Jack picked the "
    "reddest tomatoes, and Ella pulled up carrots that were almost as long as her arm. Then they "
    "washed everything in a bucket of cold water and helped Grandma make a big pot of soup. They "
    "ate it outside at the wooden table, and everyone agreed that vegetables you pick yourself "
    "taste better than any others.\n\n",
    "A little boat named Sunny lived in a quiet bay. Every day Sunny carried people from one "
    "side of the bay to the other, and every day she wished she could see what was beyond the "
    "rocks at the mouth of the bay. One morning a kind captain said, \"Today we will go out to "
    "the open sea.\" Sunny was excited and a little scared. The waves outside were bigger, and "
    "the water was a darker blue. They saw dolphins jumping beside them and a whale blowing "
    "water high into the air. In the evening Sunny came back to the quiet bay, tired and happy, "
    "with a story to tell the other boats.\n\n",
    "Nora loved to draw. She drew cats and houses, trees and trains, and once she drew a dragon "
    "that was as long as the kitchen table. At school her teacher asked everyone to draw what "
    "they wanted to be when they grew up. Nora thought for a long time. Then she drew a woman "
    "standing in front of a huge wall covered with colors: a river, a forest, a city and a sky "
    "full of birds. Her teacher asked what it was. \"That is me,\" said Nora, \"and I am painting "
    "the whole world.\" The teacher hung the picture by the door so that everyone could see it "
    "when they came in.\n\n",
    "The moon was very bright the night Leo could not sleep. He got out of bed and looked out of "
    "the window. In the garden he saw a hedgehog walking slowly across the grass, looking for "
    "something to eat. Leo went quietly to the kitchen, found a small dish and filled it with "
    "water. He put it by the back door and waited. After a while the hedgehog came, drank some "
    "water and looked up at him with its little black eyes. Then it walked away under the hedge. "
    "Leo went back to bed and fell asleep at once, and the next night he put out the dish "
    "again.\n\n",
};

}  // namespace

const std::string& PromptText::Corpus() {
  static const std::string* corpus = [] {
    auto* text = new std::string();
    for (const char* story : kCorpus) absl::StrAppend(text, story);
    return text;
  }();
  return *corpus;
}

absl::StatusOr<PromptText> PromptText::Create(const Tokenizer* tokenizer) {
  std::vector<int32_t> ids = tokenizer->Encode(Corpus(), /*add_special_tokens=*/false);
  if (ids.size() < 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("the tokenizer turns the prompt corpus into only ", ids.size(), " tokens"));
  }
  const int64_t num_special = static_cast<int64_t>(tokenizer->Encode("Once", true).size()) -
                              static_cast<int64_t>(tokenizer->Encode("Once", false).size());
  return PromptText(tokenizer, std::move(ids), std::max<int64_t>(0, num_special));
}

PromptText::Prompt PromptText::Make(uint64_t offset, int64_t num_tokens) const {
  return MakeWindow(offset, num_tokens, /*add_special_tokens=*/true);
}

PromptText::Prompt PromptText::MakeSuffix(uint64_t offset, int64_t num_tokens) const {
  return MakeWindow(offset, num_tokens, /*add_special_tokens=*/false);
}

PromptText::Prompt PromptText::MakeWindow(uint64_t offset, int64_t num_tokens,
                                          bool add_special_tokens) const {
  const int64_t special = add_special_tokens ? num_special_ : 0;
  const size_t start = static_cast<size_t>(offset % corpus_ids_.size());
  int64_t window = std::max<int64_t>(1, num_tokens - special);
  Prompt best;
  int64_t best_error = -1;
  // Decoding a window and encoding the text back can merge or split tokens at the edges; a few
  // corrections of the window's length reach the count (or the closest one seen).
  for (int attempt = 0; attempt < 8 && (best_error != 0); ++attempt) {
    std::vector<int32_t> ids;
    ids.reserve(window);
    for (int64_t i = 0; i < window; ++i) {
      ids.push_back(corpus_ids_[(start + i) % corpus_ids_.size()]);
    }
    Prompt prompt;
    prompt.text = tokenizer_->Decode(ids, /*skip_special_tokens=*/true);
    if (prompt.text.find_first_not_of(" \n") == std::string::npos) {
      ++window;  // a lone space token decodes to nothing; servers refuse empty prompts
      continue;
    }
    prompt.token_ids = tokenizer_->Encode(prompt.text, add_special_tokens);
    const int64_t error = num_tokens - static_cast<int64_t>(prompt.token_ids.size());
    if (best_error < 0 || std::abs(error) < best_error) {
      best_error = std::abs(error);
      best = std::move(prompt);
    }
    if (window + error < 1) break;
    window += error;
  }
  return best;
}

}  // namespace pagoda
