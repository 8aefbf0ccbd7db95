// The column registry: the headers it gives, and that every column says what it means and which
// recorded convention defines it.
#include <gtest/gtest.h>

#include <set>

#include "attnspec/run/columns.h"
#include "attnspec/run/outputs.h"

namespace attnspec {
namespace {

AnalysisOptions everything() {
  AnalysisOptions o;
  o.field = FieldMode::Both;
  o.data_side = o.invariants = o.capped = true;
  return o;
}

TEST(Columns, HeadsHeaderWithoutOptions) {
  EXPECT_EQ(heads_csv_header(),
            "window,layer,head,kv_head,n,k90_field,k90_weights,erank_field,erank_weights,"
            "k50_field,k80_field,k95_field,k99_field,participation_ratio_field,stable_rank_field,sigma1_field,"
            "k50_weights,k80_weights,k95_weights,k99_weights,participation_ratio_weights,stable_rank_weights,sigma1_weights,"
            "gap_k90,gap_erank\n");
  EXPECT_EQ(layers_csv_header(),
            "window,layer,n,d,k90_input,erank_input,k50_input,k80_input,k95_input,k99_input,participation_ratio_input,"
            "stable_rank_input,sigma1_input,rank_input\n");
}

TEST(Columns, OptionsAddTheirColumnsInOrder) {
  AnalysisOptions o;
  o.field = FieldMode::Causal;
  const std::string causal = heads_csv_header(o);
  EXPECT_NE(causal.find(",gap_erank,k90_causal,erank_causal,k50_causal,"), std::string::npos);
  EXPECT_EQ(causal.find("capped"), std::string::npos);  // soft-capped models only
  o.capped = true;
  const std::string capped = heads_csv_header(o);
  EXPECT_LT(capped.find("k90_field_capped"), capped.find("k90_causal_capped"));
  EXPECT_LT(capped.find("k90_causal_capped"), capped.find(",k90_causal,"));
  const std::string all = heads_csv_header(everything());
  EXPECT_NE(all.find(",k99_causal_lower,k90_keys,"), std::string::npos);
  EXPECT_NE(all.find(",rank_queries_centred,row_sum_residual,"), std::string::npos);
  EXPECT_TRUE(all.ends_with(",key_rank\n"));
}

template <typename Table>
void expect_described(const Table& columns, const nlohmann::json* conventions, const char* file) {
  std::set<std::string> names;
  for (const auto& c : columns) {
    EXPECT_TRUE(names.insert(c.name).second) << file << ": " << c.name << " twice";
    EXPECT_FALSE(c.meaning.empty()) << file << ": " << c.name;
    if (conventions && !c.convention.empty())
      EXPECT_TRUE(conventions->contains(c.convention)) << file << ": " << c.name << "'s convention " << c.convention;
  }
}

TEST(Columns, EveryColumnIsDescribedByARecordedConvention) {
  nlohmann::json conventions = conventions_json();
  conventions.update(extras_conventions_json(everything()));
  expect_described(heads_columns(), &conventions, "heads.csv");
  expect_described(spectra_fields(), &conventions, "spectra.jsonl");
  expect_described(layer_columns(), &conventions, "layers.csv");
  expect_described(layer_spectra_fields(), &conventions, "layers.jsonl");
  expect_described(head_summary_columns({"k90_field", "k90_causal"}), &conventions, "head_summary.csv");
  // The plan files' conventions are plan.json's, private to plan.cpp: only names and meanings here.
  expect_described(plan_columns(), nullptr, "plan.csv");
  expect_described(plan_curve_columns(), nullptr, "plan_curves.csv");
}

TEST(Columns, SummarisedColumns) {
  std::set<std::string> aggregated, spread;
  for (const auto& c : heads_columns()) {
    if (c.aggregated) aggregated.insert(c.name);
    if (c.spread_per_head) spread.insert(c.name);
  }
  EXPECT_EQ(aggregated, (std::set<std::string>{"k90_field", "k90_weights", "erank_field", "erank_weights", "gap_k90",
                                               "gap_erank", "k90_causal", "erank_causal", "k99_causal", "k90_keys",
                                               "k90_queries", "k90_queries_centred", "col_participation",
                                               "key_coherence"}));
  EXPECT_EQ(spread, (std::set<std::string>{"k90_field", "k90_causal"}));
}

}  // namespace
}  // namespace attnspec
