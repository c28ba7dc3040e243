package com.facesegtool.core;

/**
 * Mask pictures: the palette colour mask, the translucent overlay blended into the image
 * (bit-identical to facesegtool.effects.overlay), and a transparent ARGB layer to draw over a
 * live camera preview.
 */
public final class Overlay {
    private Overlay() {}

    /** Opaque palette picture of a mask; classes beyond the palette are grey. */
    public static int[] colourMask(byte[] mask, int[] palette) {
        int[] out = new int[mask.length];
        for (int i = 0; i < mask.length; i++) {
            int m = mask[i] & 255;
            out[i] = 0xFF000000 | (m < palette.length ? palette[m] : 0x808080);
        }
        return out;
    }

    /**
     * Every non-background pixel blended with its class colour at strength alpha
     * ((src * (256 - a) + colour * a + 128) >> 8, a = Effects.strength(alpha)).
     *
     * @param background index of the background class (left unchanged), or -1
     */
    public static int[] blend(int[] argb, byte[] mask, int[] palette, int background, double alpha) {
        if (argb.length != mask.length) throw new IllegalArgumentException("image and mask differ in size");
        int a = Effects.strength(alpha);
        int[] out = argb.clone();
        for (int i = 0; i < mask.length; i++) {
            int m = mask[i] & 255;
            if (m == background || m >= palette.length) continue;
            out[i] = Effects.blendPixel(argb[i], palette[m], a);
        }
        return out;
    }

    /** A layer for drawing over the preview: class colours at the given alpha, background transparent. */
    public static int[] layer(byte[] mask, int[] palette, int background, double alpha) {
        int a = Math.max(0, Math.min(255, (int) Math.round(alpha * 255)));
        int[] out = new int[mask.length];
        for (int i = 0; i < mask.length; i++) {
            int m = mask[i] & 255;
            out[i] = (m == background || m >= palette.length) ? 0 : (a << 24) | palette[m];
        }
        return out;
    }
}
