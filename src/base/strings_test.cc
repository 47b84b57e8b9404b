#include "base/strings.h"

#include <gtest/gtest.h>

namespace wharf {

TEST(Base64, RoundTripsEveryLength) {
  std::string data;
  for (int n = 0; n < 40; ++n) {
    auto decoded = Base64Decode(Base64Encode(data));
    ASSERT_TRUE(decoded.has_value()) << n;
    EXPECT_EQ(*decoded, data);
    data += char(n * 37);
  }
}

TEST(Base64, RefusesGarbage) {
  EXPECT_FALSE(Base64Decode("abc").has_value());
  EXPECT_FALSE(Base64Decode("ab!d").has_value());
  EXPECT_FALSE(Base64Decode("a=bc").has_value());
}

TEST(Time, FormatsAndParsesUtc) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(ParseTime("2026-11-24T01:02:03Z"), 1795482123);
  EXPECT_EQ(FormatTime(1795482123), "2026-11-24T01:02:03Z");
}

TEST(Time, RefusesOtherForms) {
  EXPECT_FALSE(ParseTime("2026-11-24 01:02:03").has_value());
  EXPECT_FALSE(ParseTime("2026-13-24T01:02:03Z").has_value());
  EXPECT_FALSE(ParseTime("").has_value());
}

TEST(Utf8, AcceptsWellFormedRefusesBroken) {
  EXPECT_TRUE(IsValidUtf8("r\xc3\xa9sum\xc3\xa9 \xf0\x9f\x9a\x80"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));             // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));         // overlong "/"
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));     // a surrogate
}

TEST(HumanBytes, UsesDecimalUnits) {
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1500000), "1.5 MB");
}

TEST(EscapeForTerminal, MakesEveryControlVisibleAndKeepsText) {
  EXPECT_EQ(EscapeForTerminal("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
  EXPECT_EQ(EscapeForTerminal("\x1b[2J\r\t\x7f"), "\\x1b[2J\\x0d\\x09\\x7f");
  EXPECT_EQ(EscapeForTerminal("a\xc2\x9b" "31m"), "a\\u009b31m");  // C1 CSI as UTF-8
  EXPECT_EQ(EscapeForTerminal("\x9b" "31m\xff"), "\\x9b31m\\xff");  // raw bytes, not UTF-8
  EXPECT_EQ(EscapeForTerminal("evil\xe2\x80\xaetxt"), "evil\\u202etxt");  // a bidi override
  EXPECT_EQ(EscapeForTerminal("a\nb"), "a\\x0ab");
  EXPECT_EQ(EscapeForTerminal("a\nb", true), "a\nb");
  EXPECT_EQ(EscapeForTerminal("\\x1b[31m"), "\\\\x1b[31m") << "a literal escape reads apart from a real one";
  EXPECT_EQ(EscapeForTerminal("a\xe2\x80\x8f" "b\xd8\x9c"), "a\\u200fb\\u061c");
  EXPECT_EQ(EscapeForTerminal("r\xc3\xa9sum\xc3\xa9 \xf0\x9f\x9a\x80 ioc@1.2"), "r\xc3\xa9sum\xc3\xa9 \xf0\x9f\x9a\x80 ioc@1.2");
}

TEST(JsonShapeWithin, BoundsNestingAndValuesOutsideStrings) {
  EXPECT_TRUE(JsonShapeWithin(R"({"a": [{"b": "[[[[,,,,"}], "c": 1})", 3, 10));
  EXPECT_FALSE(JsonShapeWithin(std::string(100, '['), 16, 1000));
  EXPECT_FALSE(JsonShapeWithin("[" + std::string(2000, ',') + "]", 16, 1000));
  EXPECT_TRUE(JsonShapeWithin(R"({"a": "\"[[[["})", 1, 10)) << "an escaped quote does not end the string";
}

TEST(Toml, RefusesEveryByteBeyondAscii) {
  // toml++ 3.3 reaches __builtin_unreachable on some of them, in strings and comments too.
  EXPECT_FALSE(FirstNonAscii("a = \"b\" # c\n[d]\ne = 'f'\n"));
  EXPECT_EQ(FirstNonAscii("\xc3\xa9 = 1\n"), 0u);
  EXPECT_EQ(FirstNonAscii("a = \"caf\xc3\xa9\"\n"), 8u);
  EXPECT_EQ(FirstNonAscii("a = 1 # \xe2\x82\xac\n"), 8u);
  EXPECT_EQ(FirstNonAscii("ste =08 \"\xef\xbb\xbf\n"), 9u);
}

}  // namespace wharf
