package com.facesegtool.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * FramePipeline on real faces (a rotated, mirrored camera frame; photos that are not square) with a
 * stand-in model's scores, against what the Python code makes of the same frames
 * (tools/android_goldens.py, pipeline.json): the same output pixels, exactly, alpha included. The one
 * tolerance is the model's input, Java's bilinear resize against OpenCV's (within one level, as in
 * GoldenTest); the output pixels never go through that resize except at an exact 2x reduction, where
 * the two round alike.
 */
public class FramePipelineGoldenTest {
    static GoldenFiles g;
    static Map<?, ?> index;
    static Sidecar sc;

    @BeforeClass
    public static void load() throws Exception {
        g = new GoldenFiles();
        index = (Map<?, ?>) GoldenFiles.json(g.text("pipeline.json"));
        sc = Sidecar.parse(g.text((String) index.get("sidecar")));
    }

    static List<?> cases() {
        return (List<?>) index.get("cases");
    }

    static float[] floats(String name) throws Exception {
        ByteBuffer b = g.tensor(name, ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[b.capacity() / 4];
        for (int i = 0; i < out.length; i++) out[i] = b.getFloat(4 * i);
        return out;
    }

    static boolean flag(Map<?, ?> m, String key, boolean absent) {
        return m.containsKey(key) ? (Boolean) m.get(key) : absent;
    }

    static double number(Map<?, ?> m, String key, double absent) {
        return m.containsKey(key) ? ((Number) m.get(key)).doubleValue() : absent;
    }

    /** The case's settings for frame i, as the Activity builds them. */
    static FramePipeline.Settings settings(Map<?, ?> s, int frame) {
        FramePipeline.Settings.Builder b = FramePipeline.Settings.builder()
                .effects((Boolean) s.get("effects"))
                .alpha(number(s, "alpha", 0.5))
                .show(flag(s, "hair", true), flag(s, "lips", true), flag(s, "brows", true), flag(s, "smooth", true));
        if ((Boolean) s.get("live")) {
            List<?> restart = (List<?>) s.get("restart");
            b.live((int) number(s, "rotation", 0), flag(s, "mirror", false))
                    .steady(number(s, "steady", 0), restart != null && (Boolean) restart.get(frame))
                    .maxSide((int) number(s, "max_side", 0));
        }
        return b.build();
    }

    /** A model that returns the case's recorded scores, one frame per run, and keeps the input it was given. */
    static final class Recorded implements FramePipeline.Model {
        final float[] all;
        final int h, w, c;
        int runs;
        int[] input;

        Recorded(float[] all, List<?> shape) {
            this.all = all;
            h = ((Number) shape.get(1)).intValue();
            w = ((Number) shape.get(2)).intValue();
            c = ((Number) shape.get(3)).intValue();
        }

        @Override
        public FramePipeline.Scores run(int[] argbAtInputSize) {
            assertEquals("model input size", sc.inputWidth * sc.inputHeight, argbAtInputSize.length);
            input = argbAtInputSize;
            int n = h * w * c;
            float[] frame = java.util.Arrays.copyOfRange(all, runs * n, (runs + 1) * n);
            runs++;
            return new FramePipeline.Scores(frame, h, w);
        }
    }

    static void assertSameArgb(String name, GoldenFiles.Pnm want, FramePipeline.Output got) {
        assertEquals(name + ": width", want.width, got.width);
        assertEquals(name + ": height", want.height, got.height);
        int diff = 0, first = -1;
        for (int i = 0; i < want.argb.length; i++) {
            if (want.argb[i] != got.argb[i]) {
                diff++;
                if (first < 0) first = i;
            }
        }
        String where = first < 0 ? "" : String.format(" first at (x=%d, y=%d): python %08X, java %08X", first % want.width,
                first / want.width, want.argb[first], got.argb[first]);
        assertEquals(name + ": pixels differing from Python" + where, 0, diff);
    }

    @Test
    public void everyCaseGivesPythonsPixels() throws Exception {
        assertEquals(4, cases().size());
        for (Object o : cases()) {
            Map<?, ?> c = (Map<?, ?>) o;
            String name = (String) c.get("name");
            Map<?, ?> s = (Map<?, ?>) c.get("settings");
            GoldenFiles.Pnm frame = g.pnm((String) c.get("frame"));
            Recorded model = new Recorded(floats((String) c.get("scores")), (List<?>) c.get("scores_shape"));
            FramePipeline pipeline = new FramePipeline(sc);
            List<?> outputs = (List<?>) c.get("outputs");
            for (int i = 0; i < outputs.size(); i++) {
                FramePipeline.Output out = pipeline.process(frame.argb, frame.width, frame.height, settings(s, i), model);
                String file = (String) outputs.get(i);
                assertEquals(name + ": a layer exactly when the golden has alpha", file.endsWith(".pam"), out.transparent);
                assertSameArgb(name + " frame " + i, g.pnm(file), out);
            }
            assertEquals(name + ": one model run per frame", outputs.size(), model.runs);
        }
    }

    @Test
    public void theModelSeesTheUprightSquareWithinOneLevelOfOpenCV() throws Exception {
        for (Object o : cases()) {
            Map<?, ?> c = (Map<?, ?>) o;
            GoldenFiles.Pnm frame = g.pnm((String) c.get("frame"));
            Recorded model = new Recorded(floats((String) c.get("scores")), (List<?>) c.get("scores_shape"));
            new FramePipeline(sc).process(frame.argb, frame.width, frame.height, settings((Map<?, ?>) c.get("settings"), 0),
                    model);
            int[] want = g.pnm((String) c.get("model_input")).argb;
            int worst = 0;
            for (int i = 0; i < want.length; i++) {
                for (int shift = 0; shift <= 16; shift += 8) {
                    worst = Math.max(worst, Math.abs(((want[i] >> shift) & 255) - ((model.input[i] >> shift) & 255)));
                }
            }
            assertTrue(c.get("name") + ": model input differs from OpenCV's by " + worst + " levels", worst <= 1);
        }
    }

    @Test
    public void photoOverlayIsNotTheNearestResizedMask() throws Exception {
        // The drift this pipeline removed: the argmax at the input size, then the mask resized nearest.
        // On a real face that mask differs from the upsampled scores' one, so the goldens would catch it.
        Map<?, ?> c = (Map<?, ?>) cases().get(0);
        assertEquals("photo_overlay", c.get("name"));
        GoldenFiles.Pnm frame = g.pnm((String) c.get("frame"));
        List<?> shape = (List<?>) c.get("scores_shape");
        int h = ((Number) shape.get(1)).intValue(), w = ((Number) shape.get(2)).intValue(), n = sc.numClasses;
        float[] scores = floats((String) c.get("scores"));
        int side = Math.max(frame.width, frame.height), x0 = (side - frame.width) / 2, y0 = (side - frame.height) / 2;
        float[] atInput = ImageOps.upsampleScores(scores, h, w, n, sc.inputHeight, sc.inputWidth);
        byte[] stairs = ImageOps.resizeMaskNearest(HeadMerge.argmax(atInput, sc.inputWidth * sc.inputHeight, n),
                sc.inputWidth, sc.inputHeight, side, side);
        byte[] mask = Effects.mask(scores, h, w, sc, side, side, Effects.BAND_ROWS);
        int differ = 0;
        for (int y = y0; y < y0 + frame.height; y++) {
            for (int x = x0; x < x0 + frame.width; x++) if (stairs[y * side + x] != mask[y * side + x]) differ++;
        }
        assertTrue("nearest-resized and upsampled masks differ in " + differ + " pixels", differ > 20);
    }
}
