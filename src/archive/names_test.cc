#include "archive/names.h"

#include <gtest/gtest.h>

namespace wharf {

TEST(Names, PackageNamesAndVersions) {
  EXPECT_TRUE(ValidatePackageName("MyClass"));
  EXPECT_TRUE(ValidatePackageName("demo-ioc_2+x.y"));
  EXPECT_FALSE(ValidatePackageName(""));
  EXPECT_FALSE(ValidatePackageName("-x"));
  EXPECT_FALSE(ValidatePackageName("a/b"));
  EXPECT_FALSE(ValidatePackageName("a..b"));
  EXPECT_FALSE(ValidatePackageName(std::string(101, 'a')));
  EXPECT_TRUE(ValidateVersion("1.2.3~rc1"));
  EXPECT_TRUE(ValidateVersion("dev"));
  EXPECT_FALSE(ValidateVersion(".."));
  EXPECT_FALSE(ValidateVersion("1 2"));
}

TEST(Names, FecNames) {
  EXPECT_TRUE(ValidateFecName("cfc-774-mkr1"));
  EXPECT_FALSE(ValidateFecName("global"));
  EXPECT_FALSE(ValidateFecName("a+b"));
  auto error = ValidateFecName("../etc");
  ASSERT_FALSE(error);
  EXPECT_NE(error.error().message.find("pick another"), std::string::npos);
}

TEST(Names, Prefixes) {
  EXPECT_TRUE(ValidatePrefix("/opt/fesa/MyClass"));
  EXPECT_FALSE(ValidatePrefix("/"));
  EXPECT_FALSE(ValidatePrefix("opt/x"));
  EXPECT_FALSE(ValidatePrefix("/opt/../etc"));
  EXPECT_FALSE(ValidatePrefix("/opt/x/"));
  EXPECT_FALSE(ValidatePrefix("/opt//x"));
  EXPECT_FALSE(ValidatePrefix("/var/lib/wharf/x"));
  EXPECT_FALSE(ValidatePrefix("/var/lib"));
}

TEST(Names, EntryPaths) {
  EXPECT_TRUE(ValidateEntryPath("opt/x/bin/y"));
  EXPECT_FALSE(ValidateEntryPath("../x"));
  EXPECT_FALSE(ValidateEntryPath("/etc/x"));
  EXPECT_FALSE(ValidateEntryPath("opt/./x"));
  EXPECT_FALSE(ValidateEntryPath("opt//x"));
  EXPECT_FALSE(ValidateEntryPath(std::string("opt/\0x", 6)));
  EXPECT_EQ(ValidateEntryPath("opt/../../x").error().code, ErrorCode::kUnsafe);
}

TEST(Names, UnderPrefix) {
  EXPECT_TRUE(IsUnderPrefix("opt/x", "/opt/x"));
  EXPECT_TRUE(IsUnderPrefix("opt/x/a", "/opt/x"));
  EXPECT_FALSE(IsUnderPrefix("opt/xy", "/opt/x"));
  EXPECT_FALSE(IsUnderPrefix("opt", "/opt/x"));
}

TEST(Names, SymlinksMustStayInsidePrefix) {
  EXPECT_TRUE(SymlinkStaysInside("opt/x/lib/a.so", "a.so.1", "/opt/x"));
  EXPECT_TRUE(SymlinkStaysInside("opt/x/lib/a", "../bin/b", "/opt/x"));
  EXPECT_TRUE(SymlinkStaysInside("opt/x/lib/a", "/opt/x/bin/b", "/opt/x"));
  EXPECT_FALSE(SymlinkStaysInside("opt/x/lib/a", "../../../etc/passwd", "/opt/x"));
  EXPECT_FALSE(SymlinkStaysInside("opt/x/a", "/etc", "/opt/x"));
  EXPECT_FALSE(SymlinkStaysInside("opt/x/a", "..", "/opt/x"));
  EXPECT_FALSE(SymlinkStaysInside("opt/x/a", "", "/opt/x"));
  // "c/.." is lexically inside, but c may itself be a link elsewhere.
  EXPECT_FALSE(SymlinkStaysInside("opt/x/a", "c/..", "/opt/x"));
}

TEST(Names, PrefixOverlap) {
  EXPECT_TRUE(PrefixesOverlap("/opt/a", "/opt/a"));
  EXPECT_TRUE(PrefixesOverlap("/opt/a", "/opt/a/b"));
  EXPECT_FALSE(PrefixesOverlap("/opt/a", "/opt/ab"));
}

}  // namespace wharf
