#include "crypto/sign.h"

#include <gtest/gtest.h>

#include "base/scratch_dir.h"
#include <sys/stat.h>

#include <cstdlib>

#include "base/file.h"
#include "crypto/sha256.h"

namespace wharf {

class SignTest : public ::testing::Test {
 protected:
  ScratchDir scratch_;
  std::string dir_ = scratch_.path();
};

TEST(Sha256, KnownDigest) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(SignTest, KeygenWritesPrivateKeyOwnerOnlyAndRefusesOverwrite) {
  auto key = GenerateKeyPair(dir_ + "/k");
  ASSERT_TRUE(key) << key.error().message;
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = GenerateKeyPair(dir_ + "/k");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(SignTest, SignedDataVerifiesWithItsKeyOnly) {
  auto pub_a = GenerateKeyPair(dir_ + "/a");
  auto pub_b = GenerateKeyPair(dir_ + "/b");
  auto key_a = PrivateKey::Load(dir_ + "/a.key");
  ASSERT_TRUE(key_a && pub_a && pub_b);
  EXPECT_EQ(key_a->public_key().id, pub_a->id);
  auto line = key_a->Sign("generation 1");
  ASSERT_TRUE(line);
  auto signer = VerifySignature({*pub_b, *pub_a}, "generation 1", *line);
  ASSERT_TRUE(signer) << signer.error().message;
  EXPECT_EQ(*signer, pub_a->id);

  auto unknown = VerifySignature({*pub_b}, "generation 1", *line);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kRejected);
  EXPECT_NE(unknown.error().message.find("not trusted"), std::string::npos);

  auto tampered = VerifySignature({*pub_a}, "generation 2", *line);
  ASSERT_FALSE(tampered);
  EXPECT_EQ(tampered.error().code, ErrorCode::kRejected);
}

TEST_F(SignTest, PublicKeyFileRoundTrips) {
  auto pub = GenerateKeyPair(dir_ + "/a");
  auto loaded = LoadPublicKey(dir_ + "/a.pub");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->raw, pub->raw);
  EXPECT_EQ(loaded->id.size(), 16u);
}

TEST(Signature, MalformedLineIsCorrupt) {
  auto result = VerifySignature({}, "x", "rsa abc def");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kCorrupt);
}

}  // namespace wharf
