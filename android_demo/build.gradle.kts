// Versions in one place. AGP 8.7 needs Gradle >= 8.9 and JDK 17, and builds for API 35
// (https://developer.android.com/build/releases/gradle-plugin#compatibility).
plugins {
    id("com.android.application") version "8.7.3" apply false
}
