#pragma once
/// Image files to pixels: thread-safe and quiet. PNG and JPEG go through libpng and
/// libjpeg-turbo directly with error handlers that hand their message back (the libraries'
/// defaults print on the process's stderr, which OpenCV's imdecode leaves them to do); BMP, PNM,
/// TIFF and WebP through OpenCV, whose decoders for those print nothing.
#include <opencv2/core.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace ventral {

/// The format of a file by its leading bytes ("PNG", "JPEG", "BMP", "PNM", "TIFF", "WebP"), the way
/// OpenCV's decoders recognise them; nullptr for anything else (refused before any decoder sees it).
const char* image_format(const unsigned char* bytes, size_t size);

/// Decodes an image file's bytes to 8 bits per channel: 1 channel (gray) or 3 (RGB order; alpha
/// dropped, CMYK converted). Safe to call from several threads at once; writes nothing to stderr.
/// InputError "NAME: cannot decode image (REASON)" when the bytes are not a decodable image.
cv::Mat decode_image(const std::vector<unsigned char>& bytes, const std::string& name);
/// decode_image() of a file's contents; InputError naming the file when it cannot be read.
cv::Mat decode_image_file(const std::string& path);

}  // namespace ventral
