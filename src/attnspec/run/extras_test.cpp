// head_summary.csv and the CSV reader behind it.
#include <gtest/gtest.h>

#include "attnspec/run/extras.h"

#include "attnspec/common/error.h"

namespace attnspec {
namespace {

TEST(HeadSummary, MedianIqrMinMaxPerHead) {
  const std::string heads =
      "window,layer,head,kv_head,n,k90_field,k90_weights,k90_causal\n"
      "0,0,0,0,8,2,5,10\n"
      "0,0,1,0,8,7,6,nan\n"
      "1,0,0,0,8,4,5,12\n"
      "1,0,1,0,8,7,6,nan\n"
      "2,0,0,0,8,3,5,11\n"
      "3,0,0,0,8,9,5,20\n";
  const CsvTable t = parse_csv(head_summary_csv(heads));
  ASSERT_EQ(t.rows.size(), 2u);
  auto get = [&](size_t row, const char* col) { return t.rows[row][t.column(col)]; };
  EXPECT_EQ(get(0, "windows"), "4");
  EXPECT_EQ(get(0, "k90_weights"), "5");
  // k90_field of head 0 over 4 windows: 2, 3, 4, 9 -> numpy linear quantiles.
  EXPECT_EQ(get(0, "k90_field_median"), "3.5");
  EXPECT_EQ(get(0, "k90_field_q25"), "2.75");
  EXPECT_EQ(get(0, "k90_field_q75"), "5.25");
  EXPECT_EQ(get(0, "k90_field_iqr"), "2.5");
  EXPECT_EQ(get(0, "k90_field_min"), "2");
  EXPECT_EQ(get(0, "k90_field_max"), "9");
  EXPECT_EQ(get(0, "k90_causal_median"), "11.5");
  EXPECT_EQ(get(1, "k90_field_iqr"), "0");
  EXPECT_EQ(get(1, "k90_causal_median"), "nan");  // never reached
}

TEST(HeadSummary, WithoutCausalColumns) {
  const CsvTable t = parse_csv(head_summary_csv("window,layer,head,kv_head,n,k90_field,k90_weights\n0,1,2,1,8,3,4\n"));
  EXPECT_EQ(t.column("k90_causal_median"), -1);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0][t.column("layer")], "1");
  EXPECT_EQ(t.rows[0][t.column("k90_field_median")], "3");
}

TEST(HeadSummary, MissingColumnEveryRunWritesIsBadInput) {
  EXPECT_THROW(head_summary_csv("window,layer,head,kv_head,n,k90_weights\n0,1,2,1,8,4\n"), InputError);
}

TEST(Options, FieldModes) {
  EXPECT_EQ(parse_field_mode("both"), FieldMode::Both);
  EXPECT_THROW(parse_field_mode("masked"), std::exception);
  AnalysisOptions o;
  EXPECT_FALSE(o.any());
  o.field = FieldMode::Causal;
  EXPECT_TRUE(o.any());
}

}  // namespace
}  // namespace attnspec
