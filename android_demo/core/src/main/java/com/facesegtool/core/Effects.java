package com.facesegtool.core;

import java.util.List;

/**
 * Beauty effects from a class mask, a port of facesegtool/effects.py that gives the same pixels
 * (golden files prove it). All integer arithmetic:
 *
 * <ul>
 *   <li>strength a = floor(alpha * 256 + 0.5); blend = (src * (256 - a) + dst * a + 128) >> 8
 *   <li>luma Y = (77 R + 150 G + 29 B + 128) >> 8
 *   <li>hair, lips: dst = clamp(colour + Y - Y(colour)) (recolour keeping the shading)
 *   <li>brows: dst = (src * colour + 127) / 255 (multiply: darkens)
 *   <li>smooth: each face pixel becomes the rounded mean (sum + n/2) / n of the face pixels in its
 *       (2r+1)^2 box, so eyes, brows, lips and hair never bleed into the skin.
 * </ul>
 */
public final class Effects {
    private Effects() {}

    /** Which effects to apply; colours 0xRRGGBB, null = off; smooth = box radius in pixels, 0 = off. */
    public static final class Params {
        public Integer hair, lips, brows;
        public int smooth;

        public Params(Integer hair, Integer lips, Integer brows, int smooth) {
            this.hair = hair;
            this.lips = lips;
            this.brows = brows;
            this.smooth = smooth;
        }

        /** The defaults of `facesegtool predict` (effects.DEFAULT_EFFECTS). */
        public static Params defaults() {
            return new Params(0x8040C0, 0xC02040, 0x503830, 3);
        }
    }

    /** alpha in [0, 1] -> integer weight 0..256 (same rounding as effects.strength). */
    public static int strength(double alpha) {
        if (!(alpha >= 0.0 && alpha <= 1.0)) throw new IllegalArgumentException("alpha " + alpha + " out of range [0, 1]");
        return (int) Math.floor(alpha * 256 + 0.5);
    }

    /** "#RRGGBB" -> 0xRRGGBB. */
    public static int parseColour(String text) {
        String t = text.trim();
        if (t.startsWith("#")) t = t.substring(1);
        if (t.length() != 6) throw new IllegalArgumentException("bad colour " + text + ": use #RRGGBB");
        return Integer.parseInt(t, 16);
    }

    static int blendChannel(int s, int d, int a) {
        return (s * (256 - a) + d * a + 128) >> 8;
    }

    /** Blends the RGB of src towards dst (0xRRGGBB) with weight a/256; keeps src's alpha. */
    static int blendPixel(int src, int dst, int a) {
        int r = blendChannel((src >> 16) & 255, (dst >> 16) & 255, a);
        int g = blendChannel((src >> 8) & 255, (dst >> 8) & 255, a);
        int b = blendChannel(src & 255, dst & 255, a);
        return (src & 0xFF000000) | (r << 16) | (g << 8) | b;
    }

    static int luma(int rgb) {
        return (77 * ((rgb >> 16) & 255) + 150 * ((rgb >> 8) & 255) + 29 * (rgb & 255) + 128) >> 8;
    }

    static int clamp(int v) {
        return v < 0 ? 0 : (v > 255 ? 255 : v);
    }

    static int recolour(int px, int colour) {
        int shift = luma(px) - luma(colour);
        return (clamp(((colour >> 16) & 255) + shift) << 16) | (clamp(((colour >> 8) & 255) + shift) << 8)
                | clamp((colour & 255) + shift);
    }

    static int darken(int px, int colour) {
        int r = (((px >> 16) & 255) * ((colour >> 16) & 255) + 127) / 255;
        int g = (((px >> 8) & 255) * ((colour >> 8) & 255) + 127) / 255;
        int b = ((px & 255) * (colour & 255) + 127) / 255;
        return (r << 16) | (g << 8) | b;
    }

    /**
     * Copy of the image where each pixel of class {@code cls} is the rounded mean of the pixels of
     * that class in its (2r+1)^2 box (clipped at the border); summed-area tables over the region's
     * bounding box, so the cost does not grow with r.
     */
    public static int[] smoothRegion(int[] argb, int width, int height, byte[] mask, int cls, int radius) {
        int[] out = argb.clone();
        if (radius <= 0) return out;
        int minX = width, minY = height, maxX = -1, maxY = -1;
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                if ((mask[y * width + x] & 255) == cls) {
                    if (x < minX) minX = x;
                    if (x > maxX) maxX = x;
                    if (y < minY) minY = y;
                    if (y > maxY) maxY = y;
                }
            }
        }
        if (maxX < 0) return out;
        int x0 = Math.max(0, minX - radius), x1 = Math.min(width, maxX + radius + 1);
        int y0 = Math.max(0, minY - radius), y1 = Math.min(height, maxY + radius + 1);
        int w = x1 - x0, h = y1 - y0, stride = w + 1;
        // Four tables (R, G, B sums and the count), each (h+1) x (w+1) with a zero first row/column.
        long[] sat = new long[4 * (h + 1) * stride];
        int plane = (h + 1) * stride;
        for (int y = 0; y < h; y++) {
            long sr = 0, sg = 0, sb = 0, sn = 0;
            for (int x = 0; x < w; x++) {
                int i = (y + y0) * width + (x + x0);
                if ((mask[i] & 255) == cls) {
                    int p = argb[i];
                    sr += (p >> 16) & 255;
                    sg += (p >> 8) & 255;
                    sb += p & 255;
                    sn += 1;
                }
                int at = (y + 1) * stride + (x + 1), above = y * stride + (x + 1);
                sat[at] = sat[above] + sr;
                sat[plane + at] = sat[plane + above] + sg;
                sat[2 * plane + at] = sat[2 * plane + above] + sb;
                sat[3 * plane + at] = sat[3 * plane + above] + sn;
            }
        }
        for (int y = 0; y < h; y++) {
            int top = Math.max(y - radius, 0), bottom = Math.min(y + radius + 1, h);
            for (int x = 0; x < w; x++) {
                int i = (y + y0) * width + (x + x0);
                if ((mask[i] & 255) != cls) continue;
                int left = Math.max(x - radius, 0), right = Math.min(x + radius + 1, w);
                int br = bottom * stride + right, tr = top * stride + right, bl = bottom * stride + left, tl = top * stride + left;
                long n = sat[3 * plane + br] - sat[3 * plane + tr] - sat[3 * plane + bl] + sat[3 * plane + tl];
                int px = argb[i] & 0xFF000000;
                for (int c = 0; c < 3; c++) {
                    int o = c * plane;
                    long s = sat[o + br] - sat[o + tr] - sat[o + bl] + sat[o + tl];
                    px |= (int) ((s + n / 2) / n) << (16 - 8 * c);
                }
                out[i] = px;
            }
        }
        return out;
    }

    /** The image with the effects blended in at strength alpha; classes are found by name. */
    public static int[] apply(int[] argb, int width, int height, byte[] mask, List<String> classes, Params p, double alpha) {
        if (argb.length != width * height || mask.length != argb.length) {
            throw new IllegalArgumentException("image, mask and size disagree");
        }
        int a = strength(alpha);
        int[] out = argb.clone();
        int face = classes.indexOf("face");
        if (p.smooth > 0 && face >= 0) {
            int[] smoothed = smoothRegion(argb, width, height, mask, face, p.smooth);
            for (int i = 0; i < out.length; i++) {
                if ((mask[i] & 255) == face) out[i] = blendPixel(argb[i], smoothed[i], a);
            }
        }
        int hair = classes.indexOf("hair"), lips = classes.indexOf("lips"), brows = classes.indexOf("eyebrows");
        for (int i = 0; i < out.length; i++) {
            int m = mask[i] & 255;
            int px = argb[i];
            if (p.hair != null && m == hair) {
                out[i] = blendPixel(px, recolour(px, p.hair), a);
            } else if (p.lips != null && m == lips) {
                out[i] = blendPixel(px, recolour(px, p.lips), a);
            } else if (p.brows != null && m == brows) {
                out[i] = blendPixel(px, darken(px, p.brows), a);
            }
        }
        return out;
    }
}
