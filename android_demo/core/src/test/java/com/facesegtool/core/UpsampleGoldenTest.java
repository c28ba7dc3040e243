package com.facesegtool.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import java.util.List;
import java.util.Map;
import org.junit.BeforeClass;
import org.junit.Test;

/** ImageOps.upsampleScores then the argmax gives Python's masks (facesegtool.imaging.upsample_scores) to the bit. */
public class UpsampleGoldenTest {
    static GoldenFiles g;
    static Map<String, Object> cases;

    @BeforeClass
    @SuppressWarnings("unchecked")
    public static void load() throws Exception {
        g = new GoldenFiles();
        cases = (Map<String, Object>) GoldenFiles.json(g.text("cases.json"));
        SteadyGoldenTest.load();
    }

    static int at(List<?> list, int i) {
        return ((Number) list.get(i)).intValue();
    }

    @Test
    public void upsampledScoresArgmaxMatchesExactly() throws Exception {
        List<?> all = (List<?>) cases.get("upsample");
        assertEquals(2, all.size());
        for (Object o : all) {
            Map<?, ?> c = (Map<?, ?>) o;
            List<?> shape = (List<?>) c.get("shape"), out = (List<?>) c.get("out");
            int h = at(shape, 0), w = at(shape, 1), n = at(shape, 2), oh = at(out, 0), ow = at(out, 1);
            float[] src = SteadyGoldenTest.floats((String) c.get("scores"));
            float[] first = java.util.Arrays.copyOf(src, h * w * n); // the first frame when the file holds several
            float[] up = ImageOps.upsampleScores(first, h, w, n, oh, ow);
            byte[] ours = HeadMerge.argmax(up, oh * ow, n);
            GoldenFiles.Pnm want = g.pnm((String) c.get("mask"));
            assertEquals(ow, want.width);
            assertEquals(oh, want.height);
            assertArrayEquals("upsampled mask " + c.get("mask"), want.gray, ours);
        }
    }
}
