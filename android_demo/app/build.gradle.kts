plugins {
    id("com.android.application")
}

android {
    namespace = "com.facesegtool.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "com.facesegtool.demo"
        // 26, not 24: LiteRT's native library calls strtod_l, which bionic has from API 26 only;
        // on Android 7.x the app would die at launch with UnsatisfiedLinkError.
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }

    // The model is memory-mapped from the APK: it must be stored uncompressed.
    androidResources {
        noCompress += "tflite"
    }

    // 16 KB page-size devices (Android 15+): native libraries stored uncompressed and 16 KB
    // aligned in the APK (AGP >= 8.5.1 does this when legacy packaging is off, the default from
    // minSdk 23), so they load in place; see https://developer.android.com/guide/practices/page-sizes
    packaging {
        jniLibs {
            useLegacyPackaging = false
        }
    }
}

dependencies {
    implementation(project(":core"))

    implementation("androidx.activity:activity:1.9.3")
    implementation("androidx.core:core:1.13.1")
    implementation("androidx.exifinterface:exifinterface:1.3.7") // gallery photos' EXIF orientation

    // CameraX 1.4: its native library is built for 16 KB pages.
    val camerax = "1.4.1"
    implementation("androidx.camera:camera-core:$camerax")
    implementation("androidx.camera:camera-camera2:$camerax")
    implementation("androidx.camera:camera-lifecycle:$camerax")
    implementation("androidx.camera:camera-view:$camerax")

    // LiteRT (the TensorFlow Lite runtime, Interpreter API) with its GPU delegate. The Java API
    // (org.tensorflow.lite.Interpreter, InterpreterApi) is its own artifact, litert-api, declared
    // so that it is the same version as the runtime rather than whatever comes transitively.
    val litert = "1.4.0"
    implementation("com.google.ai.edge.litert:litert:$litert")
    implementation("com.google.ai.edge.litert:litert-api:$litert")
    implementation("com.google.ai.edge.litert:litert-gpu:$litert")
    implementation("com.google.ai.edge.litert:litert-gpu-api:$litert")
}
