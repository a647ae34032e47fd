#include "datasets/decode.hpp"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

// libjpeg's header needs size_t and FILE declared first.
#include <cstdio>
#include <cstring>
#include <csetjmp>
#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <cctype>

#include "core/error.hpp"
#include "core/io.hpp"

namespace ventral {

namespace {

// Larger images are refused before their pixels are allocated (OpenCV's own limit is 2^30).
constexpr double kMaxPixels = 1 << 28;

// The decoders below longjmp out of libjpeg and libpng on an error. Only trivially destructible
// objects live in the functions that call setjmp; the image goes into the caller's `out`.

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
// Warnings ("Corrupt JPEG data: ... extraneous bytes", premature end of data) are data the
// decoder recovered from, as OpenCV and PIL accept them; they are not printed.
void jpeg_no_message(j_common_ptr, int) {}
void jpeg_no_output(j_common_ptr) {}

bool decode_jpeg(const unsigned char* data, size_t size, cv::Mat& out, char* why, size_t why_size) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_fail;
  err.pub.emit_message = jpeg_no_message;
  err.pub.output_message = jpeg_no_output;
  err.message[0] = '\0';
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(why, why_size, "%s", err.message);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  if (static_cast<double>(cinfo.image_width) * cinfo.image_height > kMaxPixels) {
    std::snprintf(why, why_size, "%ux%u pixels is more than ventral decodes", cinfo.image_width, cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_start_decompress(&cinfo);
  out.create(static_cast<int>(cinfo.output_height), static_cast<int>(cinfo.output_width),
             CV_8UC(cinfo.output_components));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.ptr(static_cast<int>(cinfo.output_scanline));
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
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

bool decode_png(const unsigned char* data, size_t size, cv::Mat& out, char* why, size_t why_size) {
  PngSource src{data, size, 0, {}, {}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_fail, png_no_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(why, why_size, "out of memory");
    return false;
  }
  if (setjmp(src.jump)) {
    png_destroy_read_struct(&png, &info, nullptr);
    std::snprintf(why, why_size, "%s", src.message);
    return false;
  }
  png_set_read_fn(png, &src, png_read_memory);
  png_read_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
  if (static_cast<double>(width) * height > kMaxPixels) png_error(png, "more pixels than ventral decodes");
  png_set_expand(png);     // palette to RGB, gray below 8 bits to 8, tRNS to alpha
  png_set_scale_16(png);   // 16 bits to 8, rounded
  png_set_strip_alpha(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  if (channels != 1 && channels != 3) png_error(png, "unexpected channel count");
  out.create(static_cast<int>(height), static_cast<int>(width), CV_8UC(channels));
  for (int pass = 0; pass < passes; ++pass)
    for (png_uint_32 y = 0; y < height; ++y) png_read_row(png, out.ptr(static_cast<int>(y)), nullptr);
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
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
    throw InputError(name + ": cannot decode image (not a PNG, JPEG, BMP, PNM, TIFF or WebP file: unrecognised header)");
  char why[JMSG_LENGTH_MAX + 64] = "";
  cv::Mat img;
  bool ok = false;
  if (std::strcmp(format, "JPEG") == 0) {
    ok = decode_jpeg(bytes.data(), bytes.size(), img, why, sizeof why);
    if (ok && img.channels() == 4) img = cmyk_to_rgb(img);
  } else if (std::strcmp(format, "PNG") == 0) {
    ok = decode_png(bytes.data(), bytes.size(), img, why, sizeof why);
  } else {
    try {
      img = from_opencv(cv::imdecode(bytes, cv::IMREAD_UNCHANGED));
    } catch (const cv::Exception&) {
      img = cv::Mat();
    }
    ok = !img.empty();
    std::snprintf(why, sizeof why, "corrupt or truncated %s file", format);
  }
  if (!ok || img.empty())
    throw InputError(name + ": cannot decode image (" + (why[0] ? std::string(why) : std::string("corrupt file")) + ")");
  return img;
}

cv::Mat decode_image_file(const std::string& path) { return decode_image(read_file(path), path); }

}  // namespace ventral
