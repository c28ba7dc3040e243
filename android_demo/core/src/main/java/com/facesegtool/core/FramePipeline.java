package com.facesegtool.core;

/**
 * One camera frame or gallery photo through the app, from its pixels to the pixels shown; the
 * Activity only moves pixels between Android and this class.
 *
 * <ol>
 *   <li>camera frame: turned upright (rotated clockwise, then mirrored for the front camera), its
 *       centre square taken; photo: padded to a square with black borders, so the model sees it
 *       undistorted
 *   <li>the square resized bilinearly to the model's input, the model run ({@link Model})
 *   <li>camera frames only: the scores smoothed over time ({@link ScoreSmoother}, the Steady slider)
 *   <li>the scores upsampled to the picture's size ({@link ImageOps#upsampleScores}, the same floats
 *       as facesegtool.imaging.upsample_scores) and the argmax taken there, in both modes: the mask
 *       is never resized after the argmax, so the overlay and the effects show the same mask as
 *       {@code facesegtool predict}
 *   <li>mask mode: a transparent layer over the preview (camera) or the overlay blended into the
 *       photo; effects mode: the effects, each faded by its class's soft alpha
 *   <li>photo: cropped back from the square to the photo
 * </ol>
 *
 * tools/android_goldens.py writes what the Python code makes of real faces on this path; the
 * JUnit tests check that this class gives the same pixels. Holds the smoothing state between
 * frames: use one instance from one thread.
 */
public final class FramePipeline {
    /** The model: an ARGB image at the sidecar's input size -> its class scores. */
    public interface Model {
        Scores run(int[] argbAtInputSize);
    }

    /** Model class scores, height x width x numClasses floats (row major, channels last). */
    public static final class Scores {
        public final float[] values;
        public final int height, width;

        public Scores(float[] values, int height, int width) {
            this.values = values;
            this.height = height;
            this.width = width;
        }
    }

    /** Everything the user has chosen, read once per frame so that a frame never mixes two choices. */
    public static final class Settings {
        /** A camera frame (centre square, smoothed, a layer over the preview) or a still photo (padded, blended). */
        public final boolean live;
        /** Clockwise rotation that makes a camera frame upright (0, 90, 180, 270), then a left-right flip. */
        public final int rotationDegrees;
        public final boolean mirror;
        /** Effects mode; otherwise the mask. */
        public final boolean effects;
        /** The slider: mask opacity or effect strength, 0..1. */
        public final double alpha;
        public final boolean hair, lips, brows, smooth;
        /** Temporal smoothing strength of camera frames, 0 = off ({@link ScoreSmoother}). */
        public final double steady;
        /** Start the smoothing afresh at this frame (another camera, back from a photo). */
        public final boolean restart;
        /** Largest side of a camera frame's output (cost grows with area); 0 = the frame's own. */
        public final int maxSide;

        private Settings(Builder b) {
            live = b.live;
            rotationDegrees = b.rotationDegrees;
            mirror = b.mirror;
            effects = b.effects;
            alpha = b.alpha;
            hair = b.hair;
            lips = b.lips;
            brows = b.brows;
            smooth = b.smooth;
            steady = b.steady;
            restart = b.restart;
            maxSide = b.maxSide;
        }

        public static Builder builder() {
            return new Builder();
        }

        /** Defaults: a still photo, mask mode at 0.5, every effect on, default smoothing, no size limit. */
        public static final class Builder {
            private boolean live, mirror, effects, restart;
            private int rotationDegrees, maxSide;
            private double alpha = 0.5, steady = ScoreSmoother.DEFAULT_STRENGTH;
            private boolean hair = true, lips = true, brows = true, smooth = true;

            public Builder live(int rotationDegrees, boolean mirror) {
                if (rotationDegrees % 90 != 0) throw new IllegalArgumentException("rotation " + rotationDegrees);
                this.live = true;
                this.rotationDegrees = ((rotationDegrees % 360) + 360) % 360;
                this.mirror = mirror;
                return this;
            }

            public Builder effects(boolean on) {
                effects = on;
                return this;
            }

            public Builder alpha(double value) {
                Effects.strength(value); // refuses a value outside [0, 1] here, not on a frame
                alpha = value;
                return this;
            }

            public Builder show(boolean hair, boolean lips, boolean brows, boolean smooth) {
                this.hair = hair;
                this.lips = lips;
                this.brows = brows;
                this.smooth = smooth;
                return this;
            }

            public Builder steady(double strength, boolean restart) {
                this.steady = strength;
                this.restart = restart;
                return this;
            }

            public Builder maxSide(int side) {
                maxSide = side;
                return this;
            }

            public Settings build() {
                return new Settings(this);
            }
        }
    }

    /** The pixels to show: opaque, or (a camera frame in mask mode) a layer with transparent background. */
    public static final class Output {
        public final int[] argb;
        public final int width, height;
        public final boolean transparent;

        Output(int[] argb, int width, int height, boolean transparent) {
            this.argb = argb;
            this.width = width;
            this.height = height;
            this.transparent = transparent;
        }
    }

    private final Sidecar sc;
    private ScoreSmoother smoother;
    private double smootherStrength = -1; // the strength `smoother` was made with

    public FramePipeline(Sidecar sidecar) {
        this.sc = sidecar;
    }

    /** One frame (width x height ARGB, as Bitmap.getPixels gives) -> the picture to show. */
    public Output process(int[] argb, int width, int height, Settings s, Model model) {
        if (argb.length != width * height) throw new IllegalArgumentException("pixels and size disagree");
        int side, x0 = 0, y0 = 0;
        int[] square;
        if (s.live) {
            int[] upright = ImageOps.rotate(argb, width, height, s.rotationDegrees);
            int w = s.rotationDegrees % 180 == 0 ? width : height, h = s.rotationDegrees % 180 == 0 ? height : width;
            if (s.mirror) upright = ImageOps.mirror(upright, w, h);
            side = ImageOps.centreSquareSide(w, h);
            square = ImageOps.centreSquare(upright, w, h);
        } else {
            side = Math.max(width, height);
            x0 = (side - width) / 2;
            y0 = (side - height) / 2;
            square = ImageOps.crop(argb, width, height, -x0, -y0, side, side); // black borders
        }
        Scores r = model.run(ImageOps.resizeBilinear(square, side, side, sc.inputWidth, sc.inputHeight));
        float[] scores = s.live ? steadyScores(r, s) : r.values;
        int out = s.live && s.maxSide > 0 && side > s.maxSide ? s.maxSide : side;
        int[] pixels = out == side ? square : ImageOps.resizeBilinear(square, side, side, out, out);
        int background = Math.max(0, sc.classIndex("background"));
        int[] shown;
        if (s.effects) {
            Effects.Params p = Effects.Params.defaults();
            if (!s.hair) p.hair = null;
            if (!s.lips) p.lips = null;
            if (!s.brows) p.brows = null;
            // The radius is given at the model's resolution; scaled like predict's Effects.scaled.
            p.smooth = s.smooth ? Math.max(1, (int) Math.floor(p.smooth * (double) out / sc.inputWidth + 0.5)) : 0;
            Effects.Layers layers = Effects.layers(scores, r.height, r.width, sc, out, out, Effects.BAND_ROWS);
            shown = Effects.apply(pixels, out, out, layers.mask, layers.alphas, sc.targetClasses, p, s.alpha);
        } else {
            byte[] mask = Effects.mask(scores, r.height, r.width, sc, out, out, Effects.BAND_ROWS);
            if (s.live) return new Output(Overlay.layer(mask, sc.palette, background, s.alpha), out, out, true);
            shown = Overlay.blend(pixels, mask, sc.palette, background, s.alpha);
        }
        if (s.live) return new Output(shown, out, out, false);
        return new Output(ImageOps.crop(shown, side, side, x0, y0, width, height), width, height, false);
    }

    /** A camera frame's scores smoothed over time (the same ScoreSmoother as predict on a video); 0 = off. */
    private float[] steadyScores(Scores r, Settings s) {
        if (s.steady <= 0) {
            smoother = null; // switched back on, it starts afresh rather than from stale frames
            return r.values;
        }
        if (smoother == null || s.steady != smootherStrength) {
            smoother = new ScoreSmoother(s.steady, ScoreSmoother.CUT_SHARE);
            smootherStrength = s.steady;
        }
        return smoother.update(r.values, r.height, r.width, sc.numClasses, s.restart);
    }
}
