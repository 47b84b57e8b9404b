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

TEST(Toml, FindsNonAsciiOnlyOutsideStringsAndComments) {
  EXPECT_FALSE(TomlNonAsciiOutsideStrings("a = \"caf\xc3\xa9\" # caf\xc3\xa9\nb = 'caf\xc3\xa9'\n"));
  EXPECT_FALSE(TomlNonAsciiOutsideStrings("a = \"\\\"\xc3\xa9\"\nb = \"\"\"x\n\xc3\xa9\"\"\"\"\"\nc = '''\xc3\xa9'''\n"));
  EXPECT_EQ(TomlNonAsciiOutsideStrings("\xc3\xa9 = 1\n"), 0u);
  EXPECT_EQ(TomlNonAsciiOutsideStrings("a = 1\xc3\xa9\n"), 5u);
  EXPECT_EQ(TomlNonAsciiOutsideStrings("a = \"x\n\xc3\xa9 = 1\n"), 7u);  // an unterminated string ends at its line
  EXPECT_EQ(TomlNonAsciiOutsideStrings("a = \"\"\"x\"\"\"\"\"\xc3\xa9"), 13u);
}

}  // namespace wharf
