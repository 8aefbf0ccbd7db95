// The option table: one row per (name, command), values checked by type before they reach a Request.
#include "attnspec/run/options.h"

#include <set>

#include <gtest/gtest.h>

#include "attnspec/common/error.h"

namespace attnspec {
namespace {

const Option& row(const char* name, Command command) {
  for (const Option* o : options_of(command))
    if (std::string(o->name) == name) return *o;
  throw std::logic_error(std::string("no option ") + name);
}

TEST(Options, EachNameOncePerCommandAndEveryRowComplete) {
  for (Command c : {kAnalyze, kPlan, kTokenize, kCompress}) {
    std::set<std::string> seen, keywords;
    for (const Option* o : options_of(c)) {
      EXPECT_TRUE(seen.insert(o->name).second) << o->name << " twice in " << command_name(c);
      EXPECT_TRUE(keywords.insert(o->python_keyword()).second) << o->python_keyword();
      EXPECT_FALSE(o->help.empty()) << o->name;
      EXPECT_NE(o->apply, nullptr) << o->name;
      EXPECT_EQ(o->type == OptionType::Choice, !o->choices.empty()) << o->name;
      if (o->excludes) EXPECT_TRUE(seen.count(o->excludes)) << o->name << " excludes an option declared after it";
    }
    EXPECT_TRUE(seen.count("model")) << command_name(c);
  }
}

TEST(Options, DefaultsComeFromTheTable) {
  Request rq;
  set_defaults(kAnalyze, rq, {}, /*python=*/false);
  EXPECT_EQ(rq.ctx, 1024);
  EXPECT_EQ(rq.strip_gutenberg, -1);
  EXPECT_FALSE(rq.save_spectra);
  EXPECT_EQ(rq.options.causal.dense_max, CausalOptions{}.dense_max);
  Request py;
  set_defaults(kAnalyze, py, {}, /*python=*/true);
  EXPECT_TRUE(py.save_spectra);  // Python reads the spectra back
  EXPECT_TRUE(py.quiet);
  Request plan;
  set_defaults(kPlan, plan, {"ctx"}, false);
  EXPECT_EQ(plan.ctx, 0);  // given: left alone
  EXPECT_EQ(plan.tolerances, (std::vector<double>{0.01, 0.05}));
  Request tok;
  set_defaults(kTokenize, tok, {}, false);
  EXPECT_EQ(tok.strip_gutenberg, 0);  // tokenize prints the text's tokens as they are unless asked
}

TEST(Options, ValuesAreCheckedByType) {
  Request rq;
  set_option(row("ctx", kAnalyze), rq, "77");
  EXPECT_EQ(rq.ctx, 77);
  EXPECT_THROW(set_option(row("ctx", kAnalyze), rq, "7x"), InputError);
  EXPECT_THROW(set_option(row("ctx", kAnalyze), rq, "99999999999"), InputError);
  EXPECT_THROW(set_option(row("threads", kAnalyze), rq, "-1"), InputError);
  EXPECT_THROW(set_option(row("causal-max-values", kAnalyze), rq, "0"), InputError);
  EXPECT_THROW(set_option(row("field", kAnalyze), rq, "masked"), InputError);
  EXPECT_THROW(set_option(row("quiet", kAnalyze), rq, "yes"), InputError);
  set_option(row("field", kAnalyze), rq, "both");
  EXPECT_EQ(rq.options.field, FieldMode::Both);
  set_option(row("causal-method", kAnalyze), rq, "lanczos");
  EXPECT_EQ(rq.options.causal.method, CausalMethod::Lanczos);
  set_option(row("strip-gutenberg", kAnalyze), rq, "yes");
  EXPECT_EQ(rq.strip_gutenberg, 1);
  set_option(row("tolerance", kPlan), rq, "0.2");
  set_option(row("tolerance", kPlan), rq, "1e-3");
  EXPECT_EQ(rq.tolerances, (std::vector<double>{0.2, 1e-3}));
  EXPECT_THROW(set_option(row("tolerance", kPlan), rq, "a lot"), InputError);
  try {
    set_option(row("max-windows", kPlan), rq, "two");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "--max-windows: an integer is needed (got 'two')");
  }
}

TEST(Options, FinishingNeedsAnInput) {
  Request rq;
  rq.model = "/nonexistent/model";
  EXPECT_THROW(finish_request(kAnalyze, rq), InputError);
  rq.text = "a.txt";
  rq.token_ids = "b.json";
  EXPECT_THROW(finish_request(kPlan, rq), InputError);
  rq.token_ids.clear();
  finish_request(kAnalyze, rq);  // a path that is not a hub id stays as given (errors come when it is read)
  EXPECT_EQ(rq.model, "/nonexistent/model");
}

}  // namespace
}  // namespace attnspec
