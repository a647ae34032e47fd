#include "datasets/decode.hpp"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

// libjpeg's header needs size_t and FILE declared first.
#include <cstdio>
#include <cstring>
#include <csetjmp>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <opencv2/core/utils/logger.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"

namespace ventral {

namespace {

// Larger images are refused before their pixels are allocated: 2^26 pixels (8192 x 8192). PIL
// warns of a decompression bomb above 89.5 million pixels and refuses twice that; a 194-byte
// JPEG claiming 179 million pixels took the fuzzer's 10 seconds to decode into gray.
constexpr double kMaxPixels = 1 << 26;
// libjpeg's working memory (a progressive JPEG's coefficient buffers) is capped too.
constexpr long kJpegMemory = 512L << 20;
// Files larger than this are not read whole to find out that they are not images.
constexpr uintmax_t kMaxFileBytes = uintmax_t{512} << 20;

// The decoders below longjmp out of libjpeg and libpng on an error. The state the libraries
// change lives in the caller (objects changed between setjmp and longjmp in the function that
// called setjmp would be indeterminate afterwards), no C++ object with a destructor lives in a
// function that calls setjmp, and the image goes into the caller's `out`.

struct JpegError {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}
// Warnings about corrupt data the decoder recovered from ("Corrupt JPEG data: ... extraneous
// bytes") are accepted, as PIL accepts them, and not printed. A file that ends before its image
// does is an error, as it is to PIL ("image file is truncated"): libjpeg would fill the rest
// with gray.
void jpeg_no_message(j_common_ptr c, int level) {
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {
    auto* e = reinterpret_cast<JpegError*>(c->err);
    std::snprintf(e->message, sizeof e->message, "truncated JPEG: the data ends before the image");
    std::longjmp(e->jump, 1);
  }
}
void jpeg_no_output(j_common_ptr) {}

struct JpegState {
  jpeg_decompress_struct cinfo;
  JpegError err;
};

// `out` is allocated before any row is read (and its allocation cannot fail for the sizes let
// through), so no C++ exception crosses libjpeg.
bool decode_jpeg(JpegState* s, const unsigned char* data, size_t size, cv::Mat& out, char* why, size_t why_size) {
  s->cinfo.err = jpeg_std_error(&s->err.pub);
  s->err.pub.error_exit = jpeg_fail;
  s->err.pub.emit_message = jpeg_no_message;
  s->err.pub.output_message = jpeg_no_output;
  s->err.message[0] = '\0';
  if (setjmp(s->err.jump)) {
    jpeg_destroy_decompress(&s->cinfo);
    std::snprintf(why, why_size, "%s", s->err.message);
    return false;
  }
  jpeg_create_decompress(&s->cinfo);
  s->cinfo.mem->max_memory_to_use = kJpegMemory;
  jpeg_mem_src(&s->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&s->cinfo, TRUE);
  const bool cmyk = s->cinfo.jpeg_color_space == JCS_CMYK || s->cinfo.jpeg_color_space == JCS_YCCK;
  s->cinfo.out_color_space = cmyk ? JCS_CMYK : s->cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  if (static_cast<double>(s->cinfo.image_width) * s->cinfo.image_height > kMaxPixels) {
    std::snprintf(why, why_size, "%ux%u pixels, more than the 8192x8192 ventral decodes", s->cinfo.image_width,
                  s->cinfo.image_height);
    jpeg_destroy_decompress(&s->cinfo);
    return false;
  }
  jpeg_start_decompress(&s->cinfo);
  out.create(static_cast<int>(s->cinfo.output_height), static_cast<int>(s->cinfo.output_width),
             CV_8UC(s->cinfo.output_components));
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    JSAMPROW row = out.ptr(static_cast<int>(s->cinfo.output_scanline));
    jpeg_read_scanlines(&s->cinfo, &row, 1);
  }
  jpeg_finish_decompress(&s->cinfo);
  jpeg_destroy_decompress(&s->cinfo);
  return true;
}

// CMYK (as Adobe writes it, inverted) to RGB, with OpenCV's arithmetic, so that these files
// decode as they always have.
cv::Mat cmyk_to_rgb(const cv::Mat& cmyk) {
  cv::Mat rgb(cmyk.rows, cmyk.cols, CV_8UC3);
  for (int y = 0; y < cmyk.rows; ++y) {
    const uint8_t* s = cmyk.ptr(y);
    uint8_t* d = rgb.ptr(y);
    for (int x = 0; x < cmyk.cols; ++x, s += 4, d += 3) {
      const int k = s[3];
      for (int c = 0; c < 3; ++c) d[c] = static_cast<uint8_t>(k - ((255 - s[c]) * k >> 8));
    }
  }
  return rgb;
}

struct PngSource {
  const unsigned char* data;
  size_t size, pos;
  std::jmp_buf jump;
  char message[256];
};

void png_fail(png_structp png, png_const_charp message) {
  auto* s = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", message);
  std::longjmp(s->jump, 1);
}
void png_no_warning(png_structp, png_const_charp) {}
void png_read_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* s = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > s->size - s->pos) png_error(png, "file truncated");
  std::memcpy(out, s->data + s->pos, n);
  s->pos += n;
}

struct PngState {
  PngSource src;
  png_structp png;
  png_infop info;
};

bool decode_png(PngState* s, cv::Mat& out, char* why, size_t why_size) {
  s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s->src, png_fail, png_no_warning);
  s->info = s->png ? png_create_info_struct(s->png) : nullptr;
  if (!s->info) {
    png_destroy_read_struct(&s->png, nullptr, nullptr);
    std::snprintf(why, why_size, "out of memory");
    return false;
  }
  if (setjmp(s->src.jump)) {
    png_destroy_read_struct(&s->png, &s->info, nullptr);
    std::snprintf(why, why_size, "%s", s->src.message);
    return false;
  }
  png_set_read_fn(s->png, &s->src, png_read_memory);
  png_read_info(s->png, s->info);
  const png_uint_32 width = png_get_image_width(s->png, s->info), height = png_get_image_height(s->png, s->info);
  if (static_cast<double>(width) * height > kMaxPixels) png_error(s->png, "more pixels than the 8192x8192 ventral decodes");
  png_set_expand(s->png);     // palette to RGB, gray below 8 bits to 8, tRNS to alpha
  png_set_scale_16(s->png);   // 16 bits to 8, rounded
  png_set_strip_alpha(s->png);
  const int passes = png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);
  const int channels = png_get_channels(s->png, s->info);
  if (channels != 1 && channels != 3) png_error(s->png, "unexpected channel count");
  out.create(static_cast<int>(height), static_cast<int>(width), CV_8UC(channels));
  for (int pass = 0; pass < passes; ++pass)
    for (png_uint_32 y = 0; y < height; ++y) png_read_row(s->png, out.ptr(static_cast<int>(y)), nullptr);
  png_read_end(s->png, nullptr);
  png_destroy_read_struct(&s->png, &s->info, nullptr);
  return true;
}

// OpenCV's BMP, PNM, TIFF and WebP decoders report a file that ends early by printing on std::cerr
// ("imdecode_(''): can't read data: ... Unexpected end of input stream"): such files are
// caught here first, from their headers. Returns the reason, or "" when the file is complete.
uint32_t le32(const unsigned char* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

std::string incomplete_bmp(const std::vector<unsigned char>& b) {
  if (b.size() < 30) return "truncated BMP header";
  const uint32_t offset = le32(&b[10]), header = le32(&b[14]);
  if (header < 12 || 14 + static_cast<uint64_t>(header) > b.size()) return "truncated BMP header";
  int64_t width, height, bits;
  uint32_t compression = 0;
  if (header == 12) {  // OS/2 core header
    width = b[18] | b[19] << 8, height = b[20] | b[21] << 8, bits = b[24] | b[25] << 8;
  } else {
    width = static_cast<int32_t>(le32(&b[18])), height = static_cast<int32_t>(le32(&b[22]));
    bits = b[28] | b[29] << 8;
    if (b.size() >= 34) compression = le32(&b[30]);
  }
  if (width <= 0 || height == 0 || width > 65535 || std::abs(height) > 65535) return "BMP header claims no pixels";
  if (static_cast<double>(width) * std::abs(height) > kMaxPixels) return "more pixels than the 8192x8192 ventral decodes";
  if (compression != 0 && compression != 3) return "";  // run-length data: OpenCV checks as it goes
  const uint64_t row = (static_cast<uint64_t>(width) * static_cast<uint64_t>(bits) + 31) / 32 * 4;
  if (offset + row * static_cast<uint64_t>(std::abs(height)) > b.size()) return "truncated BMP: the pixel data ends early";
  return "";
}

std::string incomplete_pnm(const std::vector<unsigned char>& b, int64_t* maxval_out = nullptr) {
  // Magic, then width, height and (except bitmaps) maxval, separated by whitespace and comments.
  size_t p = 2;
  auto number = [&](int64_t& v) {
    for (;;) {
      while (p < b.size() && std::isspace(b[p])) ++p;
      if (p < b.size() && b[p] == '#')
        while (p < b.size() && b[p] != '\n') ++p;
      else
        break;
    }
    if (p >= b.size() || !std::isdigit(b[p])) return false;
    v = 0;
    while (p < b.size() && std::isdigit(b[p]) && v < (int64_t{1} << 32)) v = v * 10 + (b[p++] - '0');
    return true;
  };
  const char kind = static_cast<char>(b[1]);
  int64_t width = 0, height = 0, maxval = 1;
  if (!number(width) || !number(height) || ((kind != '1' && kind != '4') && !number(maxval)))
    return "truncated or malformed PNM header";
  if (width <= 0 || height <= 0 || maxval <= 0 || maxval > 65535) return "PNM header out of range";
  if (maxval_out && kind != '1' && kind != '4') *maxval_out = maxval;
  if (static_cast<double>(width) * height > kMaxPixels) return "more pixels than the 8192x8192 ventral decodes";
  if (kind < '4') {  // plain (text) formats: every sample a number, and enough of them
    const uint64_t samples = static_cast<uint64_t>(width) * height * (kind == '3' ? 3 : 1);
    uint64_t count = 0;
    for (size_t q = p; q < b.size() && count < samples;) {
      const unsigned char c = b[q];
      if (std::isspace(c)) {
        ++q;
      } else if (c == '#') {
        while (q < b.size() && b[q] != '\n') ++q;
      } else if (kind == '1' && (c == '0' || c == '1')) {
        ++count, ++q;  // plain bitmaps may run their digits together
      } else if (std::isdigit(c)) {
        while (q < b.size() && std::isdigit(b[q])) ++q;
        ++count;
      } else {
        return "malformed plain PNM: a sample that is not a number";
      }
    }
    return count < samples ? "truncated PNM: fewer samples than the header's size" : "";
  }
  const uint64_t channels = kind == '6' ? 3 : 1, depth = maxval > 255 ? 2 : 1;
  const uint64_t need = kind == '4' ? (static_cast<uint64_t>(width) + 7) / 8 * height
                                    : static_cast<uint64_t>(width) * height * channels * depth;
  if (p + 1 + need > b.size()) return "truncated PNM: the pixel data ends early";
  return "";
}

// A TIFF's first image: every strip (or tile) it points to must lie inside the file; OpenCV's
// TIFF reader prints a truncated one on std::cerr.
std::string incomplete_tiff(const std::vector<unsigned char>& b) {
  const bool little = b[0] == 'I';
  auto u16 = [&](uint64_t at) -> uint32_t {
    return little ? b[at] | b[at + 1] << 8 : b[at] << 8 | b[at + 1];
  };
  auto u32 = [&](uint64_t at) -> uint32_t {
    return little ? le32(&b[at]) : static_cast<uint32_t>(b[at]) << 24 | b[at + 1] << 16 | b[at + 2] << 8 | b[at + 3];
  };
  if (b.size() < 8) return "truncated TIFF header";
  const uint64_t ifd = u32(4);
  if (ifd + 2 > b.size()) return "truncated TIFF: the image directory lies past the end";
  const uint32_t entries = u16(ifd);
  if (ifd + 2 + 12 * static_cast<uint64_t>(entries) > b.size()) return "truncated TIFF: the image directory ends early";
  // Values of a SHORT or LONG array entry (inline when they fit in 4 bytes).
  auto values = [&](uint64_t entry, std::vector<uint64_t>& out) {
    const uint32_t type = u16(entry + 2), n = u32(entry + 4), size = type == 3 ? 2 : type == 4 ? 4 : 0;
    if (size == 0 || n > (1u << 24)) return false;
    const uint64_t at = static_cast<uint64_t>(n) * size <= 4 ? entry + 8 : u32(entry + 8);
    if (at + static_cast<uint64_t>(n) * size > b.size()) return false;
    for (uint32_t k = 0; k < n; ++k) out.push_back(size == 2 ? u16(at + 2 * k) : u32(at + 4 * k));
    return true;
  };
  std::vector<uint64_t> offsets, counts;
  for (uint32_t k = 0; k < entries; ++k) {
    const uint64_t entry = ifd + 2 + 12 * static_cast<uint64_t>(k);
    const uint32_t tag = u16(entry);
    if ((tag == 273 || tag == 324) && !values(entry, offsets)) return "truncated TIFF: strip offsets past the end";
    if ((tag == 279 || tag == 325) && !values(entry, counts)) return "truncated TIFF: strip sizes past the end";
  }
  if (offsets.empty() || offsets.size() != counts.size()) return "malformed TIFF: no strips, or sizes that do not match them";
  for (size_t k = 0; k < offsets.size(); ++k)
    if (offsets[k] + counts[k] > b.size()) return "truncated TIFF: the pixel data ends early";
  return "";
}

// Any depth and channel count OpenCV returns (BGR order) to 8-bit gray or RGB.
cv::Mat from_opencv(const cv::Mat& in) {
  cv::Mat img = in;
  if (img.depth() != CV_8U) img.convertTo(img, CV_8U, img.depth() == CV_16U ? 1.0 / 257.0 : 1.0);
  cv::Mat out;
  switch (img.channels()) {
    case 1: return img;
    case 3: cv::cvtColor(img, out, cv::COLOR_BGR2RGB); return out;
    case 4: cv::cvtColor(img, out, cv::COLOR_BGRA2RGB); return out;
    default: return cv::Mat();
  }
}

}  // namespace

const char* image_format(const unsigned char* b, size_t size) {
  auto starts = [&](std::initializer_list<unsigned char> sig) {
    return size >= sig.size() && std::equal(sig.begin(), sig.end(), b);
  };
  if (starts({0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'})) return "PNG";
  if (starts({0xff, 0xd8, 0xff})) return "JPEG";
  if (starts({'B', 'M'})) return "BMP";
  if (size >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6' && std::isspace(b[2])) return "PNM";
  if (starts({'I', 'I', 0x2a, 0x00}) || starts({'M', 'M', 0x00, 0x2a})) return "TIFF";
  if (size >= 12 && starts({'R', 'I', 'F', 'F'}) && std::equal(b + 8, b + 12, "WEBP")) return "WebP";
  return nullptr;
}

cv::Mat decode_image(const std::vector<unsigned char>& bytes, const std::string& name) {
  // Debian's OpenCV also carries decoders (DICOM through GDCM, among others) that abort the
  // process on malformed input instead of failing (found by fuzzing:
  // tests/fuzz/corpus/image/regression_gdcm_abort): only the formats named here get that far.
  const char* format = image_format(bytes.data(), bytes.size());
  if (!format)
    throw InputError(printable(name) +
                     ": cannot decode image (not a PNG, JPEG, BMP, PNM, TIFF or WebP file: unrecognised header)");
  char why[JMSG_LENGTH_MAX + 64] = "";
  cv::Mat img;
  bool ok = false;
  if (std::strcmp(format, "JPEG") == 0) {
    JpegState state;
    ok = decode_jpeg(&state, bytes.data(), bytes.size(), img, why, sizeof why);
    if (ok && img.channels() == 4) img = cmyk_to_rgb(img);
  } else if (std::strcmp(format, "PNG") == 0) {
    PngState state{{bytes.data(), bytes.size(), 0, {}, {}}, nullptr, nullptr};
    ok = decode_png(&state, img, why, sizeof why);
  } else {
    // OpenCV's TIFF and WebP decoders log their complaints through OpenCV's logger: silenced once.
    static const bool quiet = [] {
      cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
      return true;
    }();
    (void)quiet;
    // OpenCV's WebP reader needs 32 bytes of header (and prints when it has fewer).
    int64_t pnm_max = 0;  // a graymap's or pixmap's largest sample value, which OpenCV does not scale by
    const std::string incomplete = std::strcmp(format, "BMP") == 0    ? incomplete_bmp(bytes)
                                   : std::strcmp(format, "PNM") == 0  ? incomplete_pnm(bytes, &pnm_max)
                                   : std::strcmp(format, "TIFF") == 0 ? incomplete_tiff(bytes)
                                   : bytes.size() < 32                ? "truncated WebP header"
                                                                      : "";
    if (incomplete.empty()) {
      cv::Mat raw;
      try {
        // OpenCV's plain-PNM reader needs whitespace after the last sample (without it, it prints
        // to std::cerr and fails): such a file is read with a newline after it.
        const bool plain_pnm = std::strcmp(format, "PNM") == 0 && bytes[1] >= '1' && bytes[1] <= '3';
        if (plain_pnm && !std::isspace(bytes.back())) {
          std::vector<unsigned char> ended(bytes);
          ended.push_back('\n');
          raw = cv::imdecode(ended, cv::IMREAD_UNCHANGED);
        } else {
          raw = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
        }
      } catch (const cv::Exception&) {
        raw = cv::Mat();
      }
      // Pixels are read as fractions of their type's range: signed or floating-point samples have
      // no such range here (a float TIFF in [0, 1] read as 0 or 1 of 255).
      if (!raw.empty() && raw.depth() != CV_8U && raw.depth() != CV_16U)
        throw InputError(printable(name) + ": a " + format + " image with " +
                         (raw.depth() == CV_32F || raw.depth() == CV_64F ? "floating-point" : "signed-integer") +
                         " samples, which ventral does not read (8- or 16-bit unsigned only); convert it");
      // PNM samples run from 0 to the header's maxval (15, 1023, ...), not to their type's maximum.
      if (!raw.empty() && pnm_max > 0 && pnm_max != (raw.depth() == CV_8U ? 255 : 65535))
        raw.convertTo(raw, CV_8U, 255.0 / static_cast<double>(pnm_max));
      if (!raw.empty()) img = from_opencv(raw);
    }
    ok = !img.empty();
    std::snprintf(why, sizeof why, "%s", incomplete.empty() ? (std::string("corrupt or truncated ") + format + " file").c_str()
                                                            : incomplete.c_str());
  }
  if (!ok || img.empty())
    throw InputError(printable(name) + ": cannot decode image (" +
                     (why[0] ? printable(why) : std::string("corrupt file")) + ")");
  return img;
}

cv::Mat decode_image_file(const std::string& path) {
  std::error_code ec;
  const uintmax_t bytes = std::filesystem::file_size(path, ec);
  if (!ec && bytes > kMaxFileBytes)
    throw InputError(printable(path) + ": cannot decode image (" + std::to_string(bytes >> 20) +
                     " MiB, larger than any image ventral decodes)");
  return decode_image(read_file(path), path);
}

}  // namespace ventral
