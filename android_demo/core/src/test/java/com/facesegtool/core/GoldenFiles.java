package com.facesegtool.core;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;
import org.json.JSONTokener;

/** Reads the golden files tools/android_goldens.py writes: PPM/PGM/PAM, gzipped raw tensors, JSON. */
final class GoldenFiles {
    final File dir;

    /** -Dgolden.dir=... (run_tests.sh, and pytest on freshly written goldens), else the test resources. */
    GoldenFiles() {
        String prop = System.getProperty("golden.dir");
        if (prop != null && !prop.isEmpty()) {
            dir = new File(prop);
        } else {
            URL url = GoldenFiles.class.getResource("/golden/cases.json");
            if (url == null) throw new IllegalStateException("golden files not found (no -Dgolden.dir, not on the classpath)");
            try {
                dir = new File(url.toURI()).getParentFile();
            } catch (URISyntaxException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    byte[] bytes(String name) throws IOException {
        try (InputStream in = new FileInputStream(new File(dir, name))) {
            return readAll(name.endsWith(".gz") ? new GZIPInputStream(in) : in);
        }
    }

    String text(String name) throws IOException {
        return new String(bytes(name), StandardCharsets.UTF_8);
    }

    /** Little-endian tensor bytes (gunzipped) wrapped in a buffer of the given order. */
    ByteBuffer tensor(String name, ByteOrder order) throws IOException {
        byte[] raw = bytes(name);
        ByteBuffer le = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        if (order == ByteOrder.LITTLE_ENDIAN || name.contains(".i8")) return le;
        ByteBuffer out = ByteBuffer.allocate(raw.length).order(order); // re-encode floats in native order
        for (int i = 0; i < raw.length; i += 4) out.putFloat(i, le.getFloat(i));
        return out;
    }

    /** A binary PPM (P6: opaque argb), PAM (P7 RGB_ALPHA: argb with its alpha) or PGM (P5: mask bytes). */
    static final class Pnm {
        int width, height;
        int[] argb; // P6, P7
        byte[] gray; // P5
    }

    Pnm pnm(String name) throws IOException {
        byte[] data = bytes(name);
        int[] pos = {0};
        String magic = token(data, pos);
        Pnm p = new Pnm();
        if (magic.equals("P7")) return pam(name, data, pos, p);
        p.width = Integer.parseInt(token(data, pos));
        p.height = Integer.parseInt(token(data, pos));
        if (!token(data, pos).equals("255")) throw new IOException(name + ": maxval is not 255");
        int start = pos[0] + 1;
        int n = p.width * p.height;
        if (magic.equals("P6")) {
            p.argb = new int[n];
            for (int i = 0; i < n; i++) {
                int o = start + 3 * i;
                p.argb[i] = 0xFF000000 | ((data[o] & 255) << 16) | ((data[o + 1] & 255) << 8) | (data[o + 2] & 255);
            }
        } else if (magic.equals("P5")) {
            p.gray = new byte[n];
            System.arraycopy(data, start, p.gray, 0, n);
        } else {
            throw new IOException(name + ": not a binary PPM/PGM");
        }
        return p;
    }

    /** The P7 header's "KEY value" lines up to ENDHDR; only WIDTH, HEIGHT, DEPTH 4, MAXVAL 255, RGB_ALPHA. */
    private static Pnm pam(String name, byte[] data, int[] pos, Pnm p) throws IOException {
        Map<String, String> header = new LinkedHashMap<>();
        for (String key = token(data, pos); !key.equals("ENDHDR"); key = token(data, pos)) header.put(key, token(data, pos));
        if (!"4".equals(header.get("DEPTH")) || !"255".equals(header.get("MAXVAL"))
                || !"RGB_ALPHA".equals(header.get("TUPLTYPE"))) {
            throw new IOException(name + ": not an 8-bit RGB_ALPHA PAM: " + header);
        }
        p.width = Integer.parseInt(header.get("WIDTH"));
        p.height = Integer.parseInt(header.get("HEIGHT"));
        p.argb = new int[p.width * p.height];
        int start = pos[0] + 1;
        for (int i = 0; i < p.argb.length; i++) {
            int o = start + 4 * i;
            p.argb[i] = ((data[o + 3] & 255) << 24) | ((data[o] & 255) << 16) | ((data[o + 1] & 255) << 8) | (data[o + 2] & 255);
        }
        return p;
    }

    private static String token(byte[] d, int[] pos) {
        while (Character.isWhitespace(d[pos[0]])) pos[0]++;
        int s = pos[0];
        while (!Character.isWhitespace(d[pos[0]])) pos[0]++;
        return new String(d, s, pos[0] - s, StandardCharsets.US_ASCII);
    }

    private static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[1 << 16];
        int n;
        while ((n = in.read(buf)) > 0) out.write(buf, 0, n);
        return out.toByteArray();
    }

    /** JSON text as plain Java values (Map, List, Number, String, Boolean, null), read with org.json. */
    static Object json(String text) {
        try {
            return plain(new JSONTokener(text).nextValue());
        } catch (JSONException e) {
            throw new IllegalArgumentException(e);
        }
    }

    private static Object plain(Object o) throws JSONException {
        if (o instanceof JSONObject) {
            JSONObject m = (JSONObject) o;
            Map<String, Object> out = new LinkedHashMap<>();
            JSONArray keys = m.names();
            for (int i = 0; keys != null && i < keys.length(); i++) {
                String k = keys.getString(i);
                out.put(k, plain(m.get(k)));
            }
            return out;
        }
        if (o instanceof JSONArray) {
            JSONArray a = (JSONArray) o;
            List<Object> out = new ArrayList<>();
            for (int i = 0; i < a.length(); i++) out.add(plain(a.get(i)));
            return out;
        }
        return o == JSONObject.NULL ? null : o;
    }
}
