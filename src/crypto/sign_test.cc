#include "crypto/sign.h"

#include <gtest/gtest.h>

#include "base/scratch_dir.h"
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/file.h"
#include "base/strings.h"
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

TEST_F(SignTest, KeygenMakesItsFolderOwnerOnly) {
  auto key = GenerateKeyPair(dir_ + "/new/keys/signing");
  ASSERT_TRUE(key) << key.error().message;
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/new/keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((dir_ + "/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(SignTest, KeyOthersCanReadOrWriteIsRefusedWithTheFix) {
  ASSERT_TRUE(GenerateKeyPair(dir_ + "/k"));
  std::string path = dir_ + "/k.key";
  // Every group or other bit is refused, alone or not: the class, not one mode.
  for (unsigned mode : {0640u, 0604u, 0620u, 0602u, 0610u, 0601u, 0644u, 0660u, 0666u, 0700u | 0070u}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto loaded = PrivateKey::Load(path);
    ASSERT_FALSE(loaded) << std::oct << mode;
    EXPECT_EQ(loaded.error().code, ErrorCode::kUnsafe);
    EXPECT_NE(loaded.error().message.find("run `chmod 600 " + path + "`"), std::string::npos)
        << loaded.error().message;
    EXPECT_NE(loaded.error().message.find("make a new key"), std::string::npos);
    auto bytes = ReadPrivateKeyFile(path);
    EXPECT_FALSE(bytes);
  }
  ASSERT_EQ(::chmod(path.c_str(), 0604), 0);
  auto refused = PrivateKey::Load(path);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("readable by others (mode 0604)"), std::string::npos)
      << refused.error().message;
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  refused = PrivateKey::Load(path);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("readable by its group (mode 0640)"), std::string::npos)
      << refused.error().message;
  for (unsigned mode : {0600u, 0400u, 0700u}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto loaded = PrivateKey::Load(path);
    EXPECT_TRUE(loaded) << loaded.error().message;
  }
}

TEST_F(SignTest, KeyOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  ASSERT_TRUE(GenerateKeyPair(dir_ + "/k"));
  ASSERT_EQ(::chown((dir_ + "/k.key").c_str(), 65534, 65534), 0);
  auto loaded = PrivateKey::Load(dir_ + "/k.key");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, ErrorCode::kUnsafe);
  EXPECT_NE(loaded.error().message.find("owned by uid 65534"), std::string::npos) << loaded.error().message;
}

TEST_F(SignTest, KeyThroughALinkIsCheckedOnTheFileItself) {
  ASSERT_TRUE(GenerateKeyPair(dir_ + "/k"));
  ASSERT_EQ(::chmod((dir_ + "/k.key").c_str(), 0644), 0);
  ASSERT_EQ(::symlink((dir_ + "/k.key").c_str(), (dir_ + "/link.key").c_str()), 0);
  auto loaded = PrivateKey::Load(dir_ + "/link.key");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, ErrorCode::kUnsafe);
}

TEST_F(SignTest, KeyThatIsNotAPlainFileIsRefused) {
  ASSERT_EQ(::mkdir((dir_ + "/d.key").c_str(), 0700), 0);
  auto loaded = PrivateKey::Load(dir_ + "/d.key");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, ErrorCode::kUnsafe);
}

TEST_F(SignTest, RecognisesPrivateKeysNotPublicOnes) {
  ASSERT_TRUE(GenerateKeyPair(dir_ + "/k"));
  auto pem = ReadFile(dir_ + "/k.key");
  auto pub = ReadFile(dir_ + "/k.pub");
  ASSERT_TRUE(pem && pub);
  EXPECT_TRUE(IsPrivateKey(*pem));
  EXPECT_TRUE(IsPrivateKey("junk first\n-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n"));
  EXPECT_TRUE(IsPrivateKey("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
  EXPECT_TRUE(IsPrivateKey("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
  // PKCS#8 DER of an Ed25519 key: the PEM body, decoded.
  std::string body;
  for (auto& line : Split(*pem, '\n'))
    if (!line.empty() && line[0] != '-') body += line;
  auto der = Base64Decode(body);
  ASSERT_TRUE(der);
  EXPECT_TRUE(IsPrivateKey(*der));
  EXPECT_FALSE(IsPrivateKey(*pub));
  EXPECT_FALSE(IsPrivateKey("{\"name\": \"-----BEGIN \", \"x\": \"PRIVATE KEY-----\"}\n-----BEGIN CERTIFICATE-----\n"));
  EXPECT_FALSE(IsPrivateKey(""));
}

TEST(Signature, MalformedLineIsCorrupt) {
  auto result = VerifySignature({}, "x", "rsa abc def");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kCorrupt);
}

}  // namespace wharf
